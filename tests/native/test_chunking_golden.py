"""Format freeze: chunk boundaries of fixed inputs.

Future chunker optimizations must not change these values, or every existing remote stops
deduplicating against new pushes (and bloats).  If one fails, the change is a format change.
"""

from __future__ import annotations

import random

import xxhash

from fastreg._hash import Chunker
from fastreg.chunking import (
    AVG_SIZE,
    MAX_SIZE,
    MIN_SIZE,
    NORM_LEVEL,
    WHOLE_FILE_LIMIT,
    default_chunker,
    gear_table,
)


def cuts_digest(chunker: Chunker, data: bytes) -> str:
    return xxhash.xxh3_64_hexdigest(",".join(map(str, chunker.cut_points(data))).encode())


def test_frozen_parameters() -> None:
    assert (MIN_SIZE, AVG_SIZE, MAX_SIZE, NORM_LEVEL, WHOLE_FILE_LIMIT) == (16384, 65536, 262144, 2, 262144)


def test_whole_file_limit() -> None:
    ch = default_chunker(16)
    data = random.Random(1).randbytes(WHOLE_FILE_LIMIT)
    assert ch.digest_buffer(data) == (xxhash.xxh3_128_digest(data), b"")
    bigger = data + b"x"
    _, chunks = ch.digest_buffer(bigger)
    assert len(chunks) > 20 and len(chunks) % 20 == 0
    assert xxhash.xxh3_64_hexdigest(gear_table()) == GOLDEN_GEAR


def test_golden_cut_points() -> None:
    data = random.Random(20261127).randbytes(8 * 1024 * 1024)
    gear = gear_table()
    got = {
        "default": cuts_digest(default_chunker(16), data),
        "4k/16k/64k": cuts_digest(Chunker(4096, 16384, 65536, gear), data),
        "1k/4k/16k n1": cuts_digest(Chunker(1024, 4096, 16384, gear, 1), data),
        "64k/256k/1m n3": cuts_digest(Chunker(65536, 262144, 1048576, gear, 3), data),
    }
    assert got == GOLDEN_CUTS


# Measured once with the reference chunker agreeing (tests/refchunker.py); frozen since.
GOLDEN_GEAR = "526f0beead6f7f68"
GOLDEN_CUTS = {
    "default": "79f0cdd4c721c855",
    "4k/16k/64k": "56f7b7cb5a7b43bc",
    "1k/4k/16k n1": "c12f3db44a7292ad",
    "64k/256k/1m n3": "71bb02c12ff7798a",
}

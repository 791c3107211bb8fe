"""Format 2 digests (SHA-256) from the native core: known answers, the definition written out
with hashlib, and the same cut points as format 1."""

from __future__ import annotations

import hashlib
import os
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg._files import copy_files
from fastreg._hash import native_sha256
from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker, file_digest, iter_chunks

SHA = default_chunker(32)


def reference(data: bytes) -> tuple[bytes, bytes]:
    """Format 2 as docs/design.md defines it, written with hashlib and format 1's cut points:
    a chunk is SHA-256(0x00 || bytes); a file of several chunks SHA-256(0x01 || chunk list)."""
    cuts = default_chunker(16).cut_points(data) if len(data) > WHOLE_FILE_LIMIT else [len(data)]
    entries, start = [], 0
    for end in cuts:
        entries.append(hashlib.sha256(b"\x00" + data[start:end]).digest() + struct.pack(">I", end - start))
        start = end
    if len(entries) == 1:
        return entries[0][:32], b""
    blob = b"".join(entries)
    return hashlib.sha256(b"\x01" + blob).digest(), blob


def test_known_answers() -> None:
    assert native_sha256()  # CPython's hashlib links OpenSSL: its libcrypto is found
    # a chunk (a file of one chunk): SHA-256 of 0x00 then the bytes
    assert SHA.digest_buffer(b"abc") == (
        bytes.fromhex("609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1"), b"")
    assert SHA.digest_buffer(b"")[0].hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    # a file of several chunks: SHA-256 of 0x01 then its chunk list
    digest, chunks = SHA.digest_buffer(random.Random(38).randbytes(1_000_000))
    assert digest.hex() == "1215a603593a4353e6d0085a5e5bef6069c73e0019f6011494a6bd983b2b96cd"
    assert len(chunks) == 14 * 36
    assert chunks[:36].hex() == "4c272af734c23f72000276fb4fc84bd26dd76af6cd1c7ad67aabc931b4d2e25900012b6a"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3_000_000), st.integers(0, 2**32))
def test_native_equals_the_definition(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert SHA.digest_buffer(data) == reference(data)


def test_same_cut_points_as_format_1() -> None:
    data = random.Random(7).randbytes(5_000_000)
    old = [length for _, length in iter_chunks(default_chunker(16).digest_buffer(data)[1], b"x" * 16, 0)]
    new_digest, new_chunks = SHA.digest_buffer(data)
    assert [length for _, length in iter_chunks(new_chunks, new_digest, 0)] == old


def test_a_file_holding_a_chunk_list_is_not_named_like_that_file() -> None:
    """The tag byte: bytes equal to a big file's chunk list get another digest than that file,
    so a cache keyed by file digest can never hand one for the other."""
    digest, chunks = SHA.digest_buffer(random.Random(1).randbytes(2_000_000))
    assert len(chunks) <= WHOLE_FILE_LIMIT
    assert SHA.digest_buffer(chunks)[0] != digest
    assert hashlib.sha256(chunks).digest() != digest


@pytest.mark.parametrize("size", [0, 10, WHOLE_FILE_LIMIT, WHOLE_FILE_LIMIT + 1, 3_000_000, 40_000_000])
def test_hash_files_and_file_digest_equal_digest_buffer(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    (got,) = SHA.hash_files([str(path)])
    assert (got.digest, got.chunks, got.size) == (*reference(data), size)
    assert file_digest(path, 32) == got.digest


def test_copy_files_gives_format_2_digests_of_whole_files(tmp_path: Path) -> None:
    sizes = [0, 100, WHOLE_FILE_LIMIT, WHOLE_FILE_LIMIT + 1, 9_000_000]
    srcs, dsts, datas = [], [], []
    for i, size in enumerate(sizes):
        datas.append(random.Random(i).randbytes(size))
        srcs.append(str(tmp_path / f"s{i}"))
        Path(srcs[-1]).write_bytes(datas[-1])
        dsts.append(str(tmp_path / f"d{i}"))
    got = copy_files(srcs, dsts, [0o444] * len(srcs), bufsize=4 << 20, md5=True, digest_size=32,
                     whole_limit=WHOLE_FILE_LIMIT)
    for data, dst, g in zip(datas, dsts, got, strict=True):
        assert Path(dst).read_bytes() == data
        # one chunk: its digest, from the copy pass; larger files are digested from their chunks
        assert g[1] == (reference(data)[0] if len(data) <= WHOLE_FILE_LIMIT else b"")
        assert g[5] == hashlib.md5(data).digest()
        assert g[0] == len(data) and g[2] == os.stat(srcs[datas.index(data)]).st_ino

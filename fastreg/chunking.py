"""Chunking policy around the native core: the frozen parameters and the gear table.

Changing anything here changes chunk boundaries, so every existing remote would stop
deduplicating against new pushes (and bloat).  tests/test_chunking_golden.py freezes the output;
a change that breaks it needs a new format version, not an updated golden value.
"""

from __future__ import annotations

import hashlib
import struct
from functools import cache
from pathlib import Path

import xxhash

from fastreg._hash import Chunker
from fastreg.objects.digest import CURRENT

#: Chunk sizes (bytes): the trade-off (index entries per GB against what a small edit uploads) is in
#: docs/design.md, "Parameters"; bench/RESULTS.md has the edit-inside-a-large-file figures.
MIN_SIZE = 16 * 1024
AVG_SIZE = 64 * 1024
MAX_SIZE = 256 * 1024
NORM_LEVEL = 2
#: Files up to this size are one chunk, never scanned for cut points (as in restic and borg,
#: whose minimum chunk is 512 KiB).  Content-defined chunking pays off inside large files; an
#: image of 100 KB gains nothing from being split, and skipping the scan roughly halves the
#: CPU cost of hashing an image dataset.  Equal to MAX_SIZE, so no chunk exceeds MAX_SIZE.
WHOLE_FILE_LIMIT = MAX_SIZE

#: A chunk list entry: the chunk's digest + its length as a big-endian uint32; 20 bytes in format
#: 1 (XXH3-128), 36 in format 2 (SHA-256).  Which one a list holds follows from its file's digest.
CHUNK_ENTRY = struct.Struct(">16sI")
CHUNK_ENTRY_2 = struct.Struct(">32sI")
_ENTRIES = {16: CHUNK_ENTRY, 32: CHUNK_ENTRY_2}


def gear_table(seed: bytes = b"fastreg-gear-v1") -> bytes:
    """256 pseudo-random uint64 (little-endian), derived from XXH3-64 so it needs no stored table."""
    return b"".join(
        xxhash.xxh3_64_intdigest(seed + bytes([i])).to_bytes(8, "little") for i in range(256)
    )


@cache
def default_chunker(digest_size: int = CURRENT) -> Chunker:
    """The chunker every fastreg repository uses: the same cut points in both formats, digests
    of digest_size bytes (16: format 1, XXH3-128; 32: format 2, SHA-256)."""
    return Chunker(MIN_SIZE, AVG_SIZE, MAX_SIZE, gear_table(), NORM_LEVEL, WHOLE_FILE_LIMIT,
                   digest_size=digest_size)


def iter_chunks(chunks: bytes, file_digest: bytes, size: int) -> list[tuple[bytes, int]]:
    """Decode a chunk list into (digest, length) pairs; an empty list means one whole-file chunk.
    The entries are of the file digest's format."""
    if not chunks:
        return [(file_digest, size)]
    return list(_ENTRIES[len(file_digest)].iter_unpack(chunks))


def list_digest(chunks: bytes) -> bytes:
    """Format 2's digest of a file of several chunks: SHA-256(0x01 || its chunk list)."""
    h = hashlib.sha256(b"\x01")
    h.update(chunks)
    return h.digest()


def file_matches(data: bytes | bytearray | memoryview, digest: bytes) -> bool:
    """Whether a whole file's bytes have this file digest, in the digest's own format."""
    if len(digest) == 16:
        return bool(xxhash.xxh3_128_digest(data) == digest)
    return len(digest) == 32 and default_chunker(32).digest_buffer(data)[0] == digest


_READ_BLOCK = 1 << 20


def file_digest(path: str | Path, digest_size: int = CURRENT) -> bytes:
    """A file's digest in the format of digest_size: format 1 reads it in 1 MiB blocks for
    XXH3-128; format 2's digest depends on the cut points, so the native chunker reads it."""
    if digest_size != 16:
        return default_chunker(digest_size).hash_files([path])[0].digest
    with open(path, "rb", buffering=0) as f:
        first = f.read(_READ_BLOCK)
        if len(first) < _READ_BLOCK:
            digest: bytes = xxhash.xxh3_128_digest(first)
            return digest
        h = xxhash.xxh3_128(first)
        while block := f.read(_READ_BLOCK):
            h.update(block)
        return h.digest()

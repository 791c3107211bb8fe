"""Digests: raw bytes in binary structures, lowercase hex in text. Two formats, told apart by
length (docs/design.md, "Digests"):

- format 2 (written now): SHA-256, 32 bytes, 64 hex characters. A stored object (a chunk, a file
  of one chunk, a tree node, a pack, an index segment) is named SHA-256(0x00 || its bytes); a file
  of several chunks SHA-256(0x01 || its chunk list) (the native chunker computes it).
- format 1 (read): XXH3-128, 16 bytes, 32 hex characters; a file's digest is of all its bytes.

A structure names its children in its own format (a format-2 tree node holds only 32-byte
digests), so a reader checks every byte with the hash the digest's length names, never a
weaker one an attacker picks.

Fixed-width tables (the remote index and its mirror, the sample index) hold WIDTH-byte keys: a
format-1 digest is widened with 16 zero bytes (`wide`), which no SHA-256 output is expected to
end with (a chance of 2**-128, and no way to aim for it).
"""

from __future__ import annotations

import hashlib
import re

import xxhash

XXH3 = 16  #: format 1
SHA256 = 32  #: format 2
CURRENT = SHA256  #: what add, push and every new remote object use
WIDTH = 32  #: key width of fixed-width tables
FORMATS = {XXH3: 1, SHA256: 2}

_HEX = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")
_PAD = bytes(WIDTH - XXH3)


def digest_of(data: bytes | bytearray | memoryview, size: int = CURRENT) -> bytes:
    """The name of a stored object with these bytes, in the format of `size` (16 or 32 bytes)."""
    if size == SHA256:
        h = hashlib.sha256(b"\x00")
        h.update(data)
        return h.digest()
    if size == XXH3:
        return xxhash.xxh3_128_digest(data)
    raise ValueError(f"no digest format of {size} bytes")


def digest_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The name of a new stored object (format 2)."""
    return digest_of(data, CURRENT)


def matches(data: bytes | bytearray | memoryview, digest: bytes) -> bool:
    """Whether `data` is the stored object named `digest` (in the digest's own format). For a
    whole file's bytes use chunking.file_matches: a file of several chunks is named otherwise."""
    return len(digest) in FORMATS and digest_of(data, len(digest)) == digest


def name_matches(data: bytes | bytearray | memoryview, name: str) -> bool:
    """`matches` for a hex name (a pack, an index segment, a snapshot)."""
    try:
        return matches(data, from_hex(name))
    except ValueError:
        return False


def wide(digest: bytes) -> bytes:
    """The WIDTH-byte table key of a digest of either format."""
    return digest if len(digest) == WIDTH else digest + _PAD


def narrow(key: bytes) -> bytes:
    """The digest a WIDTH-byte table key stands for (`wide` undone)."""
    return key[:XXH3] if key.endswith(_PAD) else key


def to_hex(digest: bytes) -> str:
    return digest.hex()


def from_hex(text: str) -> bytes:
    """Parse a digest of either format (32 or 64 hex characters); ValueError if it is not one."""
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ValueError(f"not a digest: {text!r}")
    return bytes.fromhex(text)


def format_of(digest: bytes) -> int:
    """1 or 2; ValueError for a length neither format has."""
    try:
        return FORMATS[len(digest)]
    except KeyError:
        raise ValueError(f"not a digest: {len(digest)} bytes") from None

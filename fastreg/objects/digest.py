"""Digests: XXH3-128, 16 raw bytes in binary structures, 32 lowercase hex characters in text."""

from __future__ import annotations

import re

import xxhash

_HEX = re.compile(r"[0-9a-f]{32}")

digest_bytes = xxhash.xxh3_128_digest


def to_hex(digest: bytes) -> str:
    return digest.hex()


def from_hex(text: str) -> bytes:
    """Parse a 32-hex-character digest; ValueError if it is not one."""
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ValueError(f"not a digest: {text!r}")
    return bytes.fromhex(text)

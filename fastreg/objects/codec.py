"""The one module that imports msgpack: canonical encoding options for every binary structure.

Canonical means: the same value always gives the same bytes (so content digests are stable).
Callers only use ints, str, bytes, bools, lists and None; maps are avoided in hashed structures
because their order would have to be policed.  str is always packed as msgpack str and bytes as
msgpack bin (use_bin_type), decoding is strict (raw=False, no maps with non-str keys)."""

from __future__ import annotations

from typing import Any

import msgpack

from fastreg.errors import DecodeError


def packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpackb(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"corrupt binary structure ({exc})") from exc


def array_header(n: int) -> bytes:
    """The msgpack header of an n-element array: lets a writer emit a large array from
    pre-encoded elements without building the list (what packb([...]) would give)."""
    return msgpack.Packer(use_bin_type=True).pack_array_header(n)  # type: ignore[no-any-return]


def unpack_stream(data: bytes) -> Any:
    """An iterator of the values of concatenated msgpack values in memory."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, use_list=True)
    unpacker.feed(data)
    return unpacker


def stream_unpacker(file: Any) -> Any:
    """An iterator of values from a file of concatenated msgpack values."""
    return msgpack.Unpacker(file, raw=False, strict_map_key=True, use_list=True)

"""Typed contract of the batched file operations (fastreg/_files.pyx)."""

from collections.abc import Sequence
from os import PathLike
from typing import Literal, overload

_Path = str | bytes | PathLike[str]

def stat_files(paths: Sequence[_Path]) -> list[tuple[int, int, int, int] | None]:
    """(inode, size, mtime_ns, mode) per path, following symlinks; None where it does not exist."""

def link_files(srcs: Sequence[_Path], dsts: Sequence[_Path], keys: Sequence[tuple[int, int, int]],
               mode: int = 0o444) -> list[int]: ...
def write_files(data: bytes | bytearray | memoryview, offsets: Sequence[int], lengths: Sequence[int],
                tmps: Sequence[_Path], finals: Sequence[_Path], mode: int = 0o444) -> list[int]: ...
@overload
def copy_files(srcs: Sequence[_Path], dsts: Sequence[_Path], modes: Sequence[int],
               bufsize: int = ..., md5: Literal[False] = ..., digest_size: int = ...,
               whole_limit: int = ...) -> list[tuple[int, bytes, int, int, int]]:
    """(size, digest of the bytes written, ino, mtime_ns, mode) per copied file: format 1's
    XXH3-128 (digest_size 16), or format 2's SHA-256 of files up to whole_limit (b"" above)."""

@overload
def copy_files(srcs: Sequence[_Path], dsts: Sequence[_Path], modes: Sequence[int],
               bufsize: int = ..., *, md5: Literal[True], digest_size: int = ...,
               whole_limit: int = ...) -> list[tuple[int, bytes, int, int, int, bytes]]:
    """The same, and the MD5 of those bytes (from the same buffer) last."""

def native_md5() -> bool:
    """Whether the md5s come from libcrypto without the GIL (else from hashlib)."""

def list_folder(path: _Path, tmp_mark: bytes) -> tuple[bytes, int, int, list[str], int]:
    """(listing, files, newest mtime_ns, subfolder names sorted, odd entries) of one folder."""

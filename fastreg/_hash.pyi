"""Typed contract of the native chunk/hash core (fastreg/_hash.pyx)."""

from collections.abc import Sequence
from os import PathLike

class HashedFile:
    """One file as hash_files read it."""

    @property
    def size(self) -> int: ...
    @property
    def digest(self) -> bytes: ...
    @property
    def chunks(self) -> bytes: ...
    @property
    def ino(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def mode(self) -> int: ...

class Chunker:
    min_size: int
    avg_size: int
    max_size: int
    whole_file_limit: int
    digest_size: int
    def __init__(
        self,
        min_size: int,
        avg_size: int,
        max_size: int,
        gear: bytes,
        norm_level: int = 2,
        whole_file_limit: int = 0,
        digest_size: int = 16,
    ) -> None: ...
    def cut_points(self, data: bytes | bytearray | memoryview, eof: bool = True) -> list[int]: ...
    def digest_buffer(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]: ...
    def hash_files(
        self,
        paths: Sequence[str | bytes | PathLike[str]],
        bufsize: int = ...,
    ) -> list[HashedFile]: ...

def native_sha256() -> bool:
    """Whether format 2's SHA-256 comes from libcrypto without the GIL (else from hashlib)."""

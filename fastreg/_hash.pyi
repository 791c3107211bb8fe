"""Typed contract of the native core (fastreg/_hash.pyx)."""

from collections.abc import Iterable
from os import PathLike

class Chunker:
    min_size: int
    avg_size: int
    max_size: int
    def __init__(
        self, min_size: int, avg_size: int, max_size: int, gear: bytes, norm_level: int = 2
    ) -> None: ...
    def cut_points(self, data: bytes | bytearray | memoryview, eof: bool = True) -> list[int]: ...
    def digest_buffer(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]: ...
    def hash_files(
        self, paths: Iterable[str | bytes | PathLike[str]], bufsize: int = ...
    ) -> list[tuple[int, bytes, bytes]]: ...

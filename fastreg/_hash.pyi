"""Typed contract of the native core (fastreg/_hash.pyx)."""

from collections.abc import Sequence
from os import PathLike

class Chunker:
    min_size: int
    avg_size: int
    max_size: int
    whole_file_limit: int
    def __init__(
        self,
        min_size: int,
        avg_size: int,
        max_size: int,
        gear: bytes,
        norm_level: int = 2,
        whole_file_limit: int = 0,
    ) -> None: ...
    def cut_points(self, data: bytes | bytearray | memoryview, eof: bool = True) -> list[int]: ...
    def digest_buffer(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]: ...
    def hash_files(
        self,
        paths: Sequence[str | bytes | PathLike[str]],
        copy_to: Sequence[str | bytes | PathLike[str]] | None = None,
        copy_modes: Sequence[int] | None = None,
        bufsize: int = ...,
    ) -> list[tuple[int, bytes, bytes, int, int, int]]: ...
    def stat_files(
        self, paths: Sequence[str | bytes | PathLike[str]]
    ) -> list[tuple[int, int, int, int] | None]: ...

def write_files(
    data: bytes | bytearray | memoryview,
    offsets: Sequence[int],
    lengths: Sequence[int],
    tmps: Sequence[str | bytes | PathLike[str]],
    finals: Sequence[str | bytes | PathLike[str]],
    mode: int = 0o444,
) -> list[int]: ...
def link_files(
    srcs: Sequence[str | bytes | PathLike[str]],
    dsts: Sequence[str | bytes | PathLike[str]],
    keys: Sequence[tuple[int, int, int]],
    mode: int = 0o444,
) -> list[int]: ...

def index_records(entries: bytes | bytearray | memoryview, pack_no: int) -> bytes: ...
def sort_unique(data: bytes | bytearray | memoryview, width: int, key: int) -> bytes: ...

"""What the transfer layer needs from the local object cache (implemented by repo.cache.Cache).
A protocol, so transfer/ does not import the project layer above it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class LocalObjects(Protocol):
    def file_path(self, digest: bytes) -> Path: ...

    def file_path_str(self, digest: bytes) -> str: ...

    def has_file(self, digest: bytes) -> bool: ...

    def tmp_path(self, digest: bytes | None = None) -> Path: ...

    def adopt(self, tmp: str | Path, digest: bytes) -> None: ...

    def fetched(self, digests: Iterable[bytes]) -> None:
        """Objects this process just stored after verifying their bytes."""
        ...

    def tree_path(self, digest: bytes) -> Path: ...

    def get_tree(self, digest: bytes) -> bytes: ...

    def put_tree(self, data: bytes, digest_size: int = ...) -> bytes: ...

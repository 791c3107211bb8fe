"""In-memory Store for unit tests (not used by the CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastreg.errors import ObjectNotFound, ReadOnlyStore
from fastreg.storage.base import Listing, ObjectInfo, Store, check_range


class MemoryStore(Store):
    def __init__(self, url: str = "memory://", read_only: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        """clock: the server's clock, which stamps objects (tests give it one of its own)."""
        self.url = url
        self.clock = clock
        self.read_only = read_only
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.requests: dict[str, int] = {"get": 0, "put": 0, "exists": 0, "list": 0, "delete": 0}

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        check_range(start, end)
        self.requests["get"] += 1
        try:
            data = self.objects[key][0]
        except KeyError:
            raise ObjectNotFound(f"{self.where(key)}: not found") from None
        if start is None:
            return data
        return data[start:end]

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is read-only")
        self.requests["put"] += 1
        self.objects[key] = (bytes(data), self.clock())

    async def exists(self, key: str) -> bool:
        self.requests["exists"] += 1
        return key in self.objects

    async def list(self, prefix: str) -> Listing:
        self.requests["list"] += 1
        return [ObjectInfo(k, len(v), t) for k, (v, t) in sorted(self.objects.items()) if k.startswith(prefix)]

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is read-only")
        self.requests["delete"] += 1
        self.objects.pop(key, None)

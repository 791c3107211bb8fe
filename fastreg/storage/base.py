"""The Store interface every backend implements, and the storage errors.

Keys are relative POSIX paths ("packs/ab/abcd..."). Every object fastreg writes is immutable and
named by its content, so a backend needs no locking and no read-after-overwrite guarantees.
Library errors (OSError, botocore, aiohttp) are translated into StorageError where they happen,
with `retryable` set by the backend's own classifier; the retry wrapper only reads that flag.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastreg.errors import StorageError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float  # seconds since the epoch, as the backend reports it


Listing = list[ObjectInfo]  # an alias: inside Store, `list` names the method


class Store(ABC):
    """Small async object store. `end` in get() is exclusive; get(key, start) reads to the end."""

    url: str = ""
    #: how many requests the backend serves well at once (the default for --jobs)
    connections: int = 16
    #: False when the backend cannot list (plain HTTP): readers use the remote's root hints
    can_list: bool = True
    read_only: bool = False

    @abstractmethod
    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes: ...

    @abstractmethod
    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def list(self, prefix: str) -> Listing: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        """get(), plus the seconds until the response started (time to first byte). Backends that
        talk HTTP override it with the time their response headers arrived; here it is the whole
        request, which for a local file is the same thing."""
        t0 = time.perf_counter()
        data = await self.get(key, start, end)
        return data, time.perf_counter() - t0

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        """The bytes [start, end), in `buf` when the backend can read into it (len(buf) >= end -
        start): a caller that reuses one buffer per worker then moves gigabytes without a fresh
        allocation (and page faults) per response. A short object gives a shorter view. This
        default reads with get() and ignores buf."""
        return memoryview(await self.get(key, start, end))

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def where(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"


class TimedGetStore(Store):
    """A backend that talks HTTP: its one read method, get_timed, also reports when the response
    headers arrived (time to first byte); get is derived from it."""

    @abstractmethod
    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]: ...

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return (await self.get_timed(key, start, end))[0]


T = TypeVar("T")


async def in_thread(executor: Executor | None, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on a worker thread of executor (None: the loop's default). If the caller is
    cancelled meanwhile, the thread is waited for before the cancellation goes on: a cancelled put
    never renames its object into place, nor a cancelled read fills a reused buffer, after the
    caller has moved on (a Ctrl-C'd `fastreg bench` could otherwise find an object renamed into
    place after its clean-up had listed the prefix)."""
    fut = asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            # Its failure is taken here, where the cancellation wins: left unretrieved, asyncio
            # would print it with a traceback when the future is collected.
            fut.exception()
        raise


class Positioned:
    """Mixin for read-only, seekable file objects over `_size` bytes: the position and seeking."""

    _pos: int
    _size: int

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://BUCKET[/PREFIX]; a StorageError for anything else."""
    bucket, _, prefix = url[len("s3://"):].partition("/") if url.startswith("s3://") else ("", "", "")
    if len(bucket) < 3 or any(c.isspace() or c in "\\?#" for c in bucket):
        raise StorageError(f"{url}: not an S3 URL (s3://BUCKET/PREFIX, bucket names have 3+ characters)")
    return bucket, prefix


def check_range(start: int | None, end: int | None) -> None:
    if start is not None and start < 0:
        raise ValueError("start must be >= 0")
    if end is not None and (start is None or end < start):
        raise ValueError("end needs a start and must be >= start")


def unresolvable_host(exc: BaseException) -> bool:
    """Whether a connection error comes from a host name that does not resolve, for good (the
    resolver says it does not exist: EAI_NONAME or EAI_NODATA), anywhere in the error's chain. A
    temporary failure (EAI_AGAIN) is not one: retrying may help."""
    import socket

    final = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) and e.errno in final:
            return True
        todo += [getattr(e, "__cause__", None), getattr(e, "__context__", None), getattr(e, "os_error", None)]
        kwargs = getattr(e, "kwargs", None)
        if isinstance(kwargs, dict):
            todo.append(kwargs.get("error"))
    return False

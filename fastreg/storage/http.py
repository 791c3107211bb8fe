"""Read-only HTTP(S) remote through aiohttp: any static file server that serves the remote's
directory (nginx, S3 website hosting, `python -m http.server`). Range requests are used when the
server honours them; a server that answers 200 with the whole body still works (the bytes are
sliced here). HTTP cannot list, so readers find index segments through the remote's root hints."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from fastreg.errors import ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import Listing, TimedGetStore, check_range, unresolvable_host

READ_BLOCK = 1 << 18  # bytes asked of the response stream at a time by get_into


def classify_status(status: int, where: str) -> StorageError:
    if status == 404 or status == 410:
        return ObjectNotFound(f"{where}: not found")
    if status in (401, 403):
        return StorageError(f"{where}: HTTP {status}: access denied")
    return StorageError(f"{where}: HTTP {status}", retryable=status >= 500 or status in (408, 429))


def connection_error(exc: BaseException, where: str) -> StorageError:
    """A request that got no answer (timeout, reset, refused, a name that does not resolve): a
    StorageError, retryable unless the host name does not exist."""
    gone = unresolvable_host(exc)
    return StorageError(f"{where}: {type(exc).__name__}: {exc}" + ("; the host name does not resolve" if gone else ""),
                        retryable=not gone)


async def body_into(resp: aiohttp.ClientResponse, start: int, end: int, buf: bytearray) -> memoryview:
    """The body of a 200 or 206 answer to a Range request for [start, end): copied into buf as it
    arrives (no join of a whole response); a server that ignored Range sent it all (sliced)."""
    if resp.status == 200:
        return memoryview(await resp.read())[start:end]
    view = memoryview(buf)[: end - start]
    got = 0
    while got < len(view):
        block = await resp.content.read(min(READ_BLOCK, len(view) - got))
        if not block:
            break
        view[got : got + len(block)] = block
        got += len(block)
    return view[:got]


class HTTPStore(TimedGetStore):
    can_list = False
    read_only = True
    connections = 16

    def __init__(self, url: str, connections: int = 16) -> None:
        self.url = url.rstrip("/")
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
                connector=aiohttp.TCPConnector(limit=max(self.connections, 4)),
                auto_decompress=False,  # bytes must reach the digest check exactly as stored
            )
        return self._session

    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        """The bytes, and the seconds until the response headers arrived."""
        check_range(start, end)
        if start is not None and end is not None and end == start:
            return b"", 0.0
        headers: dict[str, Any] = {}
        if start is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        where = self.where(key)
        t0 = time.perf_counter()
        try:
            async with self._open_session().get(where, headers=headers) as resp:
                ttfb = time.perf_counter() - t0
                if resp.status == 416:
                    return b"", ttfb
                if resp.status not in (200, 206):
                    raise classify_status(resp.status, where)
                data = await resp.read()
                if start is not None and resp.status == 200:
                    data = data[start:end]  # the server ignored Range: slice the full body
                return data, ttfb
        except StorageError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        """The body is copied into buf as it arrives (no join of a whole response)."""
        check_range(start, end)
        if end == start:
            return memoryview(buf)[:0]
        where = self.where(key)
        try:
            async with self._open_session().get(where, headers={"Range": f"bytes={start}-{end - 1}"}) as resp:
                if resp.status == 416:
                    return memoryview(buf)[:0]
                if resp.status not in (200, 206):
                    raise classify_status(resp.status, where)
                return await body_into(resp, start, end, buf)
        except StorageError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    async def exists(self, key: str) -> bool:
        where = self.where(key)
        try:
            async with self._open_session().head(where, allow_redirects=True) as resp:
                if resp.status == 200:
                    return True
                err = classify_status(resp.status, where)
                if isinstance(err, ObjectNotFound):
                    return False
                raise err
        except StorageError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        raise ReadOnlyStore(f"{self.url} is an HTTP remote, which is read-only; push to its S3 or local remote")

    async def delete(self, key: str) -> None:
        raise ReadOnlyStore(f"{self.url} is an HTTP remote, which is read-only")

    async def list(self, prefix: str) -> Listing:
        raise StorageError(f"{self.url}: an HTTP remote cannot be listed")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""A local directory (or any mounted filesystem) as a remote: reads and writes each run as one
call in a worker thread (so a cancelled caller never leaves a file open), the rest through
aiofiles.

Writes go to a temp name in the same folder and are renamed into place, so a crash never leaves
a partial object under its final name, and concurrent writers of the same (content-named) key
simply replace identical bytes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from pathlib import Path

import aiofiles.os

from fastreg.errors import ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import Listing, ObjectInfo, Store, check_range, in_thread

_RETRYABLE = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.EIO}


def _translate(exc: OSError, where: str) -> StorageError:
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"{where}: not found")
    return StorageError(f"{where}: {exc.strerror or exc}", retryable=exc.errno in _RETRYABLE)


def _read(path: Path, start: int | None, end: int | None) -> bytes:
    with open(path, "rb", buffering=0) as f:
        if start is not None:
            f.seek(start)
        return f.read() if start is None or end is None else f.read(end - start)


def _read_into(path: Path, start: int, end: int, buf: bytearray) -> int:
    view = memoryview(buf)[: end - start]
    got = 0
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    return got


def _write(final: Path, data: bytes | bytearray | memoryview) -> None:
    """Temp name in the same folder, then rename; the temp file goes on any failure."""
    tmp = final.with_name(f".{final.name}.{os.urandom(6).hex()}.tmp")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LocalStore(Store):
    connections = 8

    def __init__(self, root: str | Path, read_only: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self.read_only = read_only

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad key {key!r}")
        return self.root / key

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        check_range(start, end)
        path = self._path(key)
        try:
            # One thread call that opens, reads and closes: a caller cancelled mid-read (a failed
            # pull stopping its other workers) can never leave the file open.
            return await in_thread(None, _read, path, start, end)
        except OSError as exc:
            raise _translate(exc, self.where(key)) from None

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        check_range(start, end)
        path = self._path(key)
        try:
            n = await in_thread(None, _read_into, path, start, end, buf)
        except OSError as exc:
            raise _translate(exc, self.where(key)) from None
        return memoryview(buf)[:n]

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        final = self._path(key)
        try:
            await in_thread(None, _write, final, data)
        except OSError as exc:
            raise _translate(exc, self.where(key)) from None

    async def exists(self, key: str) -> bool:
        return bool(await aiofiles.os.path.exists(self._path(key)))

    async def list(self, prefix: str) -> Listing:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> Listing:
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        out: Listing = []
        if not base.is_dir():
            return out
        for dirpath, _, files in os.walk(base):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # a writer's temp file
                path = os.path.join(dirpath, name)
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        continue
                    out.append(ObjectInfo(key, st.st_size, st.st_mtime))
        out.sort(key=lambda o: o.key)
        return out

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        try:
            await aiofiles.os.remove(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _translate(exc, self.where(key)) from None

"""A bounded local cache of what a training job read, shared by its worker processes.

    objects/ab/<key hex>      one entry: a sample's bytes (key: its XXH3-128), or a span's bytes
                              as its pack holds them (key: extent_key(pack, start, end))
    tmp/                      entries being written (renamed into objects/ once counted)
    usage                     the bytes objects/ holds, as text
    lock                      flock'ed while usage is read, entries added or entries evicted
    locks/NN                  flock'ed by the process fetching a span a map-style reader wants
                              (NN: its key's first byte), so that one process fetches it

What goes in was verified by the reader (every chunk against its digest); what comes out is
verified again by it (a damaged entry is dropped and read from the remote instead). Entries are
written behind the reader by a thread of the process, a batch at a time: temp files first, then
under the lock, eviction of the least recently used entries (by mtime, which a read touches) down
to EVICT_TO of the limit, the renames, and the ledger, once per batch. The limit holds at every
moment. Many processes may fill the same cache at once; a process killed mid-write leaves only
temp files, which a later eviction removes.

The cache never holds the reader back: when a process has PENDING bytes queued (the disk is
slower than the remote), what it reads next is not kept, and the next epoch reads it from the
remote and keeps it then. The writer thread is not a daemon: a process that ends normally (a
DataLoader worker included) finishes its queued writes first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastreg.chunking import file_matches
from fastreg.objects.digest import digest_bytes

EVICT_TO = 0.8  # an eviction frees space down to this fraction of the limit
STALE_TMP = 3600.0  # a temp file this old (seconds) is a dead writer's
PENDING = 32 << 20  # bytes a process queues for writing; beyond, what it reads is not kept
OPEN_ENTRIES = 64  # entries a process keeps open for reads of their parts
TOUCH_EVERY = 10.0  # seconds between two records of one entry's use by one process


def extent_key(pack: bytes, start: int, end: int) -> bytes:
    """The key of bytes [start, end) of a pack."""
    return digest_bytes(b"fastreg.extent\0" + pack + start.to_bytes(8, "little") + end.to_bytes(8, "little"))


class _Queue:
    """One process's writes in waiting, and its writer thread (made again in a forked child)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.items: list[tuple[bytes, bytes]] = []
        self.pending = 0
        self.writing = 0  # bytes taken by the writer, not yet on disk
        self.thread: threading.Thread | None = None


class _Open:
    """One process's open entries (key -> fd, least recently used first) and when it last
    recorded each one's use; made again in a forked child, which closes its copies of the
    parent's."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.open: OrderedDict[bytes, int] = OrderedDict()
        self.touched: dict[bytes, float] = {}

    def close(self, key: bytes | None = None) -> None:
        for k in [key] if key is not None else list(self.open):
            fd = self.open.pop(k, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class SampleCache:
    def __init__(self, root: Path, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("cache_limit must be a number of bytes >= 0")
        self.root = root
        self.limit = limit
        self.objects = root / "objects"
        self._objects = str(self.objects)
        self.tmp = root / "tmp"
        self.locks = root / "locks"
        for d in (self.objects, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        self._q: _Queue | None = None
        self._open: _Open | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_q": None, "_open": None}

    def _name(self, key: bytes) -> str:
        h = key.hex()
        return f"{self._objects}/{h[:2]}/{h}"  # a str: this is on every random read's path

    def _path(self, key: bytes) -> Path:
        return Path(self._name(key))

    def read(self, key: bytes) -> bytes | None:
        """The entry's bytes as they are on disk (the caller verifies them), or None."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size) if size else b""
            while len(data) < size:
                more = os.read(fd, size - len(data))
                if not more:
                    break
                data += more
            with contextlib.suppress(OSError):
                os.utime(fd)  # most recently used
            return data
        finally:
            os.close(fd)

    def read_range(self, key: bytes, offset: int, n: int) -> bytes | None:
        """n bytes at offset of an entry (the caller verifies them), or None. A random reader
        asks for many samples of one span entry: the last OPEN_ENTRIES entries stay open (one
        fstat a read tells an entry another process evicted), and an entry's use is recorded
        (its mtime) at most every TOUCH_EVERY seconds."""
        fds = self._fds()
        with fds.lock:
            fd = fds.open.get(key)
            if fd is not None:
                fds.open.move_to_end(key)
                try:
                    if os.fstat(fd).st_nlink == 0:  # evicted meanwhile: its bytes are not ours to hold
                        raise OSError
                except OSError:
                    fds.close(key)
                    fd = None
            if fd is None:
                try:
                    fd = os.open(self._name(key), os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
                fds.open[key] = fd
                while len(fds.open) > OPEN_ENTRIES:
                    fds.close(next(iter(fds.open)))
            now = time.monotonic()
            if now - fds.touched.get(key, -TOUCH_EVERY) >= TOUCH_EVERY:
                fds.touched[key] = now
                with contextlib.suppress(OSError):
                    os.utime(fd)  # most recently used
            try:
                data = os.pread(fd, n, offset)
            except OSError:
                return None
        return data if len(data) == n else None

    def _fds(self) -> _Open:
        if self._open is None or self._open.pid != os.getpid():  # forked: open our own
            if self._open is not None:
                self._open.close()
            self._open = _Open()
        return self._open

    def get(self, digest: bytes) -> bytes | None:
        """A sample's bytes when the cache holds them whole and they verify, else None."""
        data = self.read(digest)
        if data is not None and not file_matches(data, digest):
            self.drop(digest)
            return None
        return data

    def drop(self, key: bytes) -> None:
        """Remove a damaged entry (the ledger is counted again at the next eviction)."""
        fds = self._fds()
        with fds.lock:
            fds.close(key)
        with contextlib.suppress(OSError):
            os.unlink(self._path(key))

    def put(self, key: bytes, data: bytes) -> None:
        """Keep verified bytes under key, written behind the caller; not kept when this process
        has PENDING bytes queued already, or when they do not fit. Never raises, never waits: a
        cache is an optimisation."""
        if self.limit is not None and len(data) > self.limit * EVICT_TO:
            return
        q = self._queue()
        with q.cond:
            if q.pending and q.pending + len(data) > PENDING:
                return
            q.items.append((key, data))
            q.pending += len(data)
            if q.thread is None:
                q.thread = threading.Thread(target=self._write, args=(q,), name="fastreg-data-cache")
                q.thread.start()

    def put_now(self, key: bytes, data: bytes) -> None:
        """Keep verified bytes under key before returning (when they fit); never raises."""
        if self.limit is not None and len(data) > self.limit * EVICT_TO:
            return
        with contextlib.suppress(OSError):
            self._add([(key, data)])

    @contextlib.contextmanager
    def claim(self, key: bytes) -> Iterator[None]:
        """Held by one process at a time for a key (and the few that share its lock slot): what
        it fetches and keeps there, the others wait for, then read from the cache."""
        fd = os.open(self.locks / key[:1].hex(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def flush(self) -> None:
        """Wait until what this process queued is on disk."""
        q = self._queue()
        with q.cond:
            while q.pending:
                q.cond.wait()

    def _queue(self) -> _Queue:
        if self._q is None or self._q.pid != os.getpid():  # forked: the parent's writer is not here
            self._q = _Queue()
        return self._q

    def _write(self, q: _Queue) -> None:
        while True:
            with q.cond:
                if not q.items:
                    q.thread = None
                    q.cond.notify_all()
                    return
                batch, q.items = q.items, []
            try:
                self._add(batch)
            except OSError:
                pass  # a full or read-only disk: those entries are not kept
            finally:
                with q.cond:
                    q.pending -= sum(len(d) for _, d in batch)
                    q.cond.notify_all()

    def _add(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Write a batch to temp files, then under the lock make room and rename them in."""
        todo: dict[bytes, tuple[Path, int]] = {}
        try:
            for key, data in batch:
                if key in todo or self._path(key).exists():
                    continue
                tmp = self.tmp / f"{key.hex()}.{os.getpid()}.{os.urandom(4).hex()}"
                with open(tmp, "wb") as f:
                    f.write(data)
                todo[key] = (tmp, len(data))
            if not todo:
                return
            with self._locked():
                used = self._usage()
                fresh = [(k, t, n) for k, (t, n) in todo.items() if not self._path(k).exists()]
                need = sum(n for _, _, n in fresh)
                if self.limit is not None and used + need > self.limit:
                    used = self._evict(int(self.limit * EVICT_TO) - need)
                    while fresh and used + need > self.limit:  # more than the room there is
                        need -= fresh.pop()[2]
                for key, tmp, n in fresh:
                    path = self._path(key)
                    path.parent.mkdir(exist_ok=True)
                    os.replace(tmp, path)
                    used += n
                self._set_usage(used)
        finally:
            for tmp, _ in todo.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def usage(self) -> int:
        """The bytes the cache holds (as its ledger says)."""
        with self._locked():
            return self._usage()

    # -- under the lock ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _usage(self) -> int:
        try:
            return int((self.root / "usage").read_text())
        except (OSError, ValueError):
            return self._evict(None)  # no ledger yet (or a damaged one): count what is there

    def _set_usage(self, used: int) -> None:
        tmp = self.root / f"usage.{os.getpid()}.tmp"
        tmp.write_text(str(used))
        os.replace(tmp, self.root / "usage")

    def _evict(self, target: int | None) -> int:
        """Remove the least recently used samples until at most target bytes remain (None:
        remove nothing); returns the bytes left, and sets the ledger to them."""
        entries = []
        total = 0
        for sub in os.scandir(self.objects):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for e in os.scandir(sub.path):
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries.append((st.st_mtime_ns, st.st_size, e.path))
                total += st.st_size
        if target is not None and total > target:
            evicted: list[bytes] = []
            entries.sort()
            for _, size, path in entries:
                if total <= max(target, 0):
                    break
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    total -= size
                    evicted.append(bytes.fromhex(os.path.basename(path)))
            if evicted:  # what this process held open of them is let go (their space is freed)
                fds = self._fds()
                with fds.lock:
                    for key in evicted:
                        fds.close(key)
            now = time.time()
            for e in os.scandir(self.tmp):
                with contextlib.suppress(OSError):
                    if now - e.stat().st_mtime > STALE_TMP:
                        os.unlink(e.path)
        self._set_usage(total)
        return total

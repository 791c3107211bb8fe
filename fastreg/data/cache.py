"""A bounded local cache of the samples a training job read, shared by its worker processes.

    objects/ab/<digest hex>   one sample's bytes (content-addressed: its XXH3-128)
    tmp/                      samples being written (renamed into objects/ once counted)
    usage                     the bytes objects/ holds, as text
    lock                      flock'ed while usage is read, an object added or objects evicted

Bytes are verified against their digest before they are written, and again when read (a damaged
entry is dropped and read from the remote instead). The limit holds at every moment: a sample is
renamed into objects/ only under the lock, after evicting the least recently used samples (by
mtime, which a read touches) down to EVICT_TO of the limit. Many processes may fill the same
cache at once; a process killed mid-write leaves only a temp file, which the next eviction
removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fastreg.objects.digest import digest_bytes

EVICT_TO = 0.8  # an eviction frees space down to this fraction of the limit
STALE_TMP = 3600.0  # a temp file this old (seconds) is a dead writer's


class SampleCache:
    def __init__(self, root: Path, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("cache_limit must be a number of bytes >= 0")
        self.root = root
        self.limit = limit
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: bytes) -> Path:
        h = digest.hex()
        return self.objects / h[:2] / h

    def get(self, digest: bytes) -> bytes | None:
        """The sample's bytes when the cache holds them whole (verified), else None."""
        path = self._path(digest)
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
            if digest_bytes(data) != digest:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                return None
            with contextlib.suppress(OSError):
                os.utime(fd)  # most recently used
            return data
        finally:
            os.close(fd)

    def put(self, digest: bytes, data: bytes | memoryview) -> bool:
        """Keep a sample (verified first); False when it does not fit or was not the bytes of
        its digest. Never raises for want of space: a cache is an optimisation."""
        if self.limit is not None and len(data) > self.limit * EVICT_TO:
            return False
        if digest_bytes(data) != digest:
            return False
        path = self._path(digest)
        if path.exists():
            return True
        tmp = self.tmp / f"{digest.hex()}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            with self._locked():
                if path.exists():
                    return True
                used = self._usage()
                if self.limit is not None and used + len(data) > self.limit:
                    used = self._evict(int(self.limit * EVICT_TO) - len(data))
                path.parent.mkdir(exist_ok=True)
                os.replace(tmp, path)
                self._set_usage(used + len(data))
            return True
        except OSError:
            return False
        finally:
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
            entries.sort()
            for _, size, path in entries:
                if total <= max(target, 0):
                    break
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    total -= size
            now = time.time()
            for e in os.scandir(self.tmp):
                with contextlib.suppress(OSError):
                    if now - e.stat().st_mtime > STALE_TMP:
                        os.unlink(e.path)
        self._set_usage(total)
        return total

"""`add`: walk a target, hash what changed, store new objects in the cache, build its tree.

Pipeline: the main thread walks directories in canonical (name) order and looks each file up in
the stat cache; files that must be read go, in batches, to a thread pool where the native core
reads and hashes them with the GIL released and the cache stores them (copy_file_range, reflink
or link: also GIL-free).  Results come back in submission order through a FIFO per directory
that holds at most WINDOW batches in flight, so memory stays flat: per open directory, its sorted
name list and at most one tree shard (1,000 encoded entries); finished subdirectories keep only
their 16-byte digest.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastreg.chunking import default_chunker
from fastreg.errors import FastregError, PathError
from fastreg.objects.tree import DirBuilder, DirRecord, FileRecord
from fastreg.repo.cache import Cache
from fastreg.repo.statcache import StatCache, StatCacheWriter

BATCH_FILES = 128
BATCH_BYTES = 16 << 20
WINDOW = 8  # batches in flight per directory level

Progress = Callable[[int, int], None]  # (files, bytes) done since the last call


@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    rel: str
    path: str
    st: os.stat_result
    hit: tuple[bytes, bytes] | None


def _is_exec(st: os.stat_result) -> bool:
    return bool(st.st_mode & stat.S_IXUSR)


class Builder:
    def __init__(self, cache: Cache, old: StatCache, writer: StatCacheWriter, pool: ThreadPoolExecutor,
                 progress: Progress | None = None) -> None:
        self.cache = cache
        self.old = old
        self.writer = writer
        self.pool = pool
        self.progress = progress
        self.chunker = default_chunker()

    # -- worker side -------------------------------------------------------------------------
    def _work(self, batch: list[_Item]) -> list[tuple[_Item, FileRecord, os.stat_result]]:
        misses = [it for it in batch if it.hit is None]
        try:
            hashed = iter(self.chunker.hash_files([it.path for it in misses]))
        except OSError as exc:
            raise FastregError(f"cannot read {exc.filename}: {exc.strerror}") from None
        out = []
        for it in batch:
            st = it.st
            if it.hit is None:
                size, digest, chunks = next(hashed)
                if size != st.st_size:
                    raise FastregError(f"{it.path} changed while it was being added; run the command again")
                if self.cache.store_file(it.path, digest, st) in ("hardlink", "symlink"):
                    st = os.stat(it.path)
            else:
                digest, chunks = it.hit
                size = st.st_size
            out.append((it, FileRecord(size, digest, chunks, _is_exec(it.st)), st))
        return out

    # -- main thread -------------------------------------------------------------------------
    def _item(self, name: str, rel: str, path: str, st: os.stat_result) -> _Item:
        hit = self.old.lookup(rel, st)
        if hit is not None and not self.cache.has_file(hit[0]):
            hit = None  # cached object gone (deleted by hand): read and store again
        return _Item(name, rel, path, st, hit)

    def build_file(self, path: str, rel: str) -> FileRecord:
        st = _stat_file(path)
        [(_, rec, st2)] = self._work([self._item(os.path.basename(path), rel, path, st)])
        self.writer.append(rel, st2, rec.digest, rec.chunks)
        if self.progress:
            self.progress(1, rec.size)
        return rec

    def build_dir(self, path: str, rel_prefix: str) -> DirRecord:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise FastregError(f"cannot list {path}: {exc.strerror}") from None
        builder = DirBuilder(self.cache)
        fifo: deque[tuple[str, Any]] = deque()
        in_flight = 0
        batch: list[_Item] = []
        batch_bytes = 0

        def submit() -> None:
            nonlocal batch, batch_bytes, in_flight
            if batch:
                fifo.append(("batch", self.pool.submit(self._work, batch)))
                in_flight += 1
                batch, batch_bytes = [], 0

        def drain(limit: int) -> None:
            nonlocal in_flight
            while fifo:
                kind, value = fifo[0]
                if kind == "batch":
                    fut: Future[list[tuple[_Item, FileRecord, os.stat_result]]] = value
                    if in_flight <= limit and not fut.done():
                        return
                    files = nbytes = 0
                    for it, rec, st in fut.result():
                        builder.add_file(it.name, rec)
                        self.writer.append(it.rel, st, rec.digest, rec.chunks)
                        files += 1
                        nbytes += rec.size
                    in_flight -= 1
                    if self.progress:
                        self.progress(files, nbytes)
                else:
                    builder.add_dir(kind, value)
                fifo.popleft()

        for name in names:
            child = os.path.join(path, name)
            rel = rel_prefix + name
            _check_name(name, child)
            try:
                st = os.lstat(child)
                if stat.S_ISLNK(st.st_mode):
                    st = os.stat(child)  # follow links to files; links to dirs are not entered
                    if stat.S_ISDIR(st.st_mode):
                        continue
            except FileNotFoundError:
                continue  # vanished, or a dangling symlink
            if stat.S_ISDIR(st.st_mode):
                submit()
                drain(WINDOW)
                fifo.append((name, self.build_dir(child, rel + "/")))
            elif stat.S_ISREG(st.st_mode):
                item = self._item(name, rel, child, st)
                batch.append(item)
                if item.hit is None:
                    batch_bytes += st.st_size
                if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    submit()
                    drain(WINDOW)
        submit()
        try:
            drain(0)
        except BaseException:
            for kind, value in fifo:
                if kind == "batch":
                    value.cancel()
            raise
        return builder.finish()


def _check_name(name: str, path: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(f"{os.fsencode(path)!r}: file name is not valid UTF-8; rename it") from None


def _stat_file(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise PathError(f"{path}: no such file or directory") from None


def now_ns() -> int:
    return time.time_ns()

"""`add`: walk a target, hash what changed, store new objects in the cache, build its tree.

Pipeline: the main thread walks directories in canonical (name) order and looks each file up in
the stat cache; files that must be read go, in batches, to a thread pool where the native core
reads and hashes them with the GIL released and the cache stores them (copy_file_range, reflink
or link: also GIL-free).  Results come back in submission order through a FIFO per directory
that holds at most WINDOW batches in flight, so memory stays flat: per open directory, its sorted
name list and at most one tree shard (1,000 encoded entries); finished subdirectories keep only
their digest.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastreg._files import copy_files, stat_files
from fastreg._hash import HashedFile
from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker
from fastreg.errors import NO_SPACE, ChangedWhileReadingError, FileSystemError, PathError, no_space
from fastreg.objects import tree
from fastreg.objects.digest import CURRENT
from fastreg.objects.tree import DirBuilder, DirRecord, FileRecord
from fastreg.progress import Progress
from fastreg.repo.cache import Cache, is_workspace_tmp
from fastreg.repo.scan import AHEAD, Listing, listing
from fastreg.repo.statcache import Entry, StatCacheWriter, StatFile, fingerprint

BATCH_FILES = 128
WINDOW = 8  # batches in flight per directory level




class _Hashed(NamedTuple):
    """A file as add copied and hashed it (the fields of _hash.HashedFile)."""

    size: int
    digest: bytes
    chunks: bytes
    ino: int
    mtime_ns: int
    mode: int
    md5: bytes | None = None  # of the same bytes, when the builder was asked for md5s

@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    rel: str
    path: str


StatKey = tuple[int, int, int]  # ino, size, mtime_ns of the file as it was read
Hit = tuple[bytes, bytes, StatKey, int]  # digest, chunks, stat key, mode of a stat-cache hit
Done = tuple[_Item, FileRecord, StatKey]


class Builder:
    def __init__(self, cache: Cache, old: StatFile, writer: StatCacheWriter, pool: ThreadPoolExecutor,
                 progress: Progress | None = None, stored: bool = False,
                 md5s: dict[str, bytes] | None = None, digest_size: int = CURRENT) -> None:
        """digest_size: the format of every digest built (32: format 2, what add records; 16:
        format 1, for comparing with a version recorded in it); stat-cache entries and folder
        records of the other format are misses. stored: whether the old stat cache's "stored"
        folders may be trusted (no object left the cache since it was written). md5s: filled
        with the MD5 of each file copied into the cache (path relative to the target: digest),
        from the same read (what migrate checks against DVC's records); a file not copied here
        (a stat-cache hit, a link mode) has none."""
        self.cache = cache
        self.stored = stored
        self.old = old
        self.writer = writer
        self.pool = pool
        self.progress = progress
        self.digest_size = digest_size
        self.chunker = default_chunker(digest_size)
        # Plain copy: the native core writes the cache copy from the very buffer it hashed.
        self.core_copies = cache.copies()
        #: (path relative to the target, why) of entries that are not recorded (SYMLINK_POLICY)
        self.skipped: list[tuple[str, str]] = []
        self.clean: list[str] = []  # folders that matched their stat cache record
        self.folders_read = 0  # folders built file by file
        self.md5s = md5s

    # -- worker side -------------------------------------------------------------------------
    def lookups(self, batch: list[_Item], known: dict[str, Entry]) -> list[Hit | None] | None:
        """The stat-cache hits of a batch (`known`: the old cache's entries of its folder), found
        in the walking thread. None when there is nothing to look up."""
        if not known:
            return None
        try:
            stats = stat_files([it.path for it in batch])
        except OSError as exc:
            raise FileSystemError(f"cannot stat {exc.filename}: {exc.strerror}") from None
        hits: list[Hit | None] = []
        for it, st in zip(batch, stats, strict=True):
            e = known.get(it.name) if st is not None else None
            hits.append(None if st is None or e is None or (e[0], e[1], e[2]) != st[:3]
                        or len(e[3]) != self.digest_size else (e[3], e[4], (st[0], st[1], st[2]), st[3]))
        return hits

    def _work(self, batch: list[_Item], pre: list[Hit | None] | None = None) -> list[Done]:
        paths = [it.path for it in batch]
        hits: list[Hit | None] = list(pre) if pre is not None else [None] * len(batch)
        if pre is not None:
            candidates = [i for i, h in enumerate(hits) if h is not None]
            # A stat-cache hit still needs its object in the cache (someone may have deleted it):
            # one native stat pass for the whole batch instead of an exists() per file.
            present = stat_files([self.cache.file_path_str(hits[i][0]) for i in candidates])  # type: ignore[index]
            for i, st in zip(candidates, present, strict=True):
                if st is None:
                    hits[i] = None
        misses = [paths[i] for i, h in enumerate(hits) if h is None]
        tmps = [str(self.cache.tmp_path()) for _ in misses] if self.core_copies else None
        try:
            found: list[HashedFile] | list[_Hashed] = (self.chunker.hash_files(misses) if tmps is None
                                                        else self._copy_and_hash(misses, tmps))
            hashed: Iterator[HashedFile | _Hashed] = iter(found)
        except OSError as exc:
            for t in tmps or ():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(t)
            if exc.errno == errno.ESTALE:
                raise ChangedWhileReadingError(f"{exc.filename} changed while it was being added; run the command "
                                               "again") from None
            if exc.errno in NO_SPACE:  # reading never runs out of space: storing the copy did
                raise no_space(self.cache.root, "the cache") from None
            raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None
        tmp_iter = iter(tmps or ())
        if tmps is None and misses and self.cache.hardlinks():
            results = list(hashed)
            hashed = iter(results)
            self.cache.store_hardlinked(misses, [r.digest for r in results],
                                        [(r.ino, r.size, r.mtime_ns) for r in results])
            linked = True
        else:
            linked = False
        out: list[Done] = []
        for it, hit in zip(batch, hits, strict=True):
            if hit is not None:
                digest, chunks, key, mode = hit
                out.append((it, FileRecord(key[1], digest, chunks, bool(mode & stat.S_IXUSR)), key))
                continue
            h = next(hashed)
            size, digest, chunks, mode = h.size, h.digest, h.chunks, h.mode
            if self.md5s is not None and isinstance(h, _Hashed) and h.md5 is not None:
                self.md5s[it.rel] = h.md5
            key = (h.ino, size, h.mtime_ns)
            if tmps is not None:
                self.cache.adopt(next(tmp_iter), digest)
            elif linked:
                pass  # stored above; a hardlink keeps the inode and mtime that were hashed
            elif self.cache.store_file(it.path, digest, key) == "symlink":
                # The workspace now holds a symlink to the cache object, whose stat is what
                # status will see (a hardlink keeps the inode and mtime that were hashed).
                now = os.stat(it.path)
                key = (now.st_ino, now.st_size, now.st_mtime_ns)
            out.append((it, FileRecord(size, digest, chunks, bool(mode & stat.S_IXUSR)), key))
        return out

    def _copy_and_hash(self, paths: list[str], tmps: list[str]) -> list[_Hashed]:
        """Copy files into the cache's temp names, each digest that of the very bytes written
        (_files.copy_files: the copy cannot differ from its digest); a file above the whole-file
        limit then gets its cut points from its copy (ours, nobody else writes it), and in format
        2 its digest too (that of its chunk list)."""
        modes = [0o444] * len(paths)
        if self.md5s is not None:
            with_md5 = copy_files(paths, tmps, modes, md5=True, digest_size=self.digest_size,
                                  whole_limit=WHOLE_FILE_LIMIT)
            copied = [c[:5] for c in with_md5]
            sums: list[bytes | None] = [c[5] for c in with_md5]
        else:
            copied = copy_files(paths, tmps, modes, digest_size=self.digest_size, whole_limit=WHOLE_FILE_LIMIT)
            sums = [None] * len(copied)
        big = [i for i, c in enumerate(copied) if c[0] > WHOLE_FILE_LIMIT]
        found: dict[int, tuple[bytes, bytes]] = {}
        for i, h in zip(big, self.chunker.hash_files([tmps[i] for i in big]), strict=True):
            if h.size != copied[i][0] or (self.digest_size == 16 and h.digest != copied[i][1]):
                raise OSError(errno.ESTALE, "changed while it was being read", paths[i])
            found[i] = (h.digest, h.chunks)
        return [_Hashed(size, *found.get(i, (digest, b"")), ino, mtime_ns, mode, sums[i])
                for i, (size, digest, ino, mtime_ns, mode) in enumerate(copied)]

    # -- main thread -------------------------------------------------------------------------
    def build_file(self, path: str, rel: str) -> FileRecord:
        if not os.path.isfile(path):
            raise PathError(f"{path}: no such file or directory")
        item = _Item(os.path.basename(path), rel, path)
        [(_, rec, key)] = self._work([item], self.lookups([item], self.old.entries("")))
        self.writer.append(rel, key, rec.digest, rec.chunks)
        if self.progress:
            self.progress(1, rec.size)
        return rec

    def build_dir(self, path: str, rel_prefix: str, listed: Future[Listing] | None = None) -> DirRecord:
        """A folder's tree: its subfolders first; then, if its fingerprint and theirs are those
        the stat cache recorded, the tree node recorded (none of its files looked at), else its
        files one by one. Subfolders are listed in the pool a few ahead of the walk."""
        text, own, newest, subdirs, odd = listed.result() if listed is not None else listing(path)
        fp = fingerprint(text)
        subs: dict[str, DirRecord] = {}
        ahead: deque[Future[Listing]] = deque()
        for i, name in enumerate(subdirs):
            while len(ahead) < AHEAD and i + len(ahead) < len(subdirs):
                ahead.append(self.pool.submit(listing, os.path.join(path, subdirs[i + len(ahead)])))
            child = os.path.join(path, name)
            _check_name(name, child)
            subs[name] = self.build_dir(child, rel_prefix + name + "/", ahead.popleft())
        rec = self.old.folder(rel_prefix)
        if (odd == 0 and rec is not None and rec.stored and self.stored and rec.fingerprint == fp
                and len(rec.tree) == self.digest_size
                and {n: (d, sz, f) for n, d, sz, f in rec.subs} == {n: (r.digest, r.size, r.files)
                                                                   for n, r in subs.items()}
                and self.cache.tree_path(rec.tree).exists()):
            self.clean.append(rel_prefix)
            if self.progress:
                self.progress(own, rec.size - sum(r.size for r in subs.values()))
            return DirRecord(rec.size, rec.tree, rec.files)
        self.folders_read += 1
        result = self._build_files(path, rel_prefix, subs)
        if odd == 0:
            self.writer.summary(rel_prefix, fp, newest, result.digest, result.size, result.files,
                                tuple((n, r.digest, r.size, r.files) for n, r in subs.items()), stored=True)
        return result

    def keep_clean(self) -> None:
        """Into the new stat cache: the folders that matched their record, as they were."""
        for prefix in self.clean:
            rec = self.old.folder(prefix)
            assert rec is not None
            self.writer.keep(prefix, self.old.raw(prefix), rec, self.stored)

    def _build_files(self, path: str, rel_prefix: str, subs: dict[str, DirRecord]) -> DirRecord:
        files: list[str] = []
        try:
            with os.scandir(path) as it:
                for entry in it:
                    # d_type from getdents: no stat per entry here (workers stat what they read).
                    if entry.is_dir(follow_symlinks=False):
                        continue
                    if entry.is_file():
                        if not is_workspace_tmp(entry.name):
                            files.append(entry.name)  # regular files, and symlinks to files (followed)
                    else:
                        self.skipped.append((rel_prefix + entry.name, _why_skipped(entry)))
        except OSError as exc:
            raise FileSystemError(f"cannot list {path}: {exc.strerror}") from None
        files.sort()
        dirs = sorted(subs)
        known = self.old.entries(rel_prefix)
        builder = DirBuilder(self.cache)
        fifo: deque[tuple[str, Any]] = deque()
        in_flight = 0
        batch: list[_Item] = []

        def submit() -> None:
            nonlocal batch, in_flight
            if batch:
                fifo.append(("", self.pool.submit(self._work, batch, self.lookups(batch, known))))
                in_flight += 1
                batch = []

        def drain(limit: int) -> None:
            nonlocal in_flight
            while fifo:
                name, value = fifo[0]
                if not name:
                    fut: Future[list[Done]] = value
                    if in_flight <= limit and not fut.done():
                        return
                    nbytes = 0
                    done = fut.result()
                    for it, rec, key in done:
                        builder.add_file(it.name, rec)
                        self.writer.append(it.rel, key, rec.digest, rec.chunks)
                        nbytes += rec.size
                    in_flight -= 1
                    if self.progress:
                        self.progress(len(done), nbytes)
                else:
                    builder.add_dir(name, value)
                fifo.popleft()

        # Merge the two sorted lists: entries reach the tree builder in canonical name order.
        fi = di = 0
        while fi < len(files) or di < len(dirs):
            if di >= len(dirs) or (fi < len(files) and files[fi] < dirs[di]):
                name = files[fi]
                fi += 1
                child = os.path.join(path, name)
                _check_name(name, child)
                batch.append(_Item(name, rel_prefix + name, child))
                if len(batch) >= BATCH_FILES:
                    submit()
                    drain(WINDOW)
            else:
                name = dirs[di]
                di += 1
                submit()
                drain(WINDOW)
                fifo.append((name, subs[name]))
        submit()
        try:
            drain(0)
        except BaseException:
            for name, value in fifo:
                if not name:
                    value.cancel()
            raise
        return builder.finish()


#: What a tracked directory records of what it holds:
#: - regular files, and symlinks to files: followed, the target's content and mode are recorded
#:   (a check-out writes a regular file; the link is not kept, as with `cp -L`);
#: - folders, walked; symlinks to folders are NOT followed (a link can loop, or reach data far
#:   outside the target) and neither are broken symlinks, sockets, FIFOs and devices: they are
#:   left out, and add says so (the entries, with -v all of them).
SYMLINK_POLICY = __doc__


def _why_skipped(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "symlink to a folder (not followed)" if os.path.isdir(entry.path) else "broken symlink"
    return "not a regular file"


def _check_name(name: str, path: str) -> None:
    """tree.name_problem: the rule every reader serves names by."""
    problem = tree.name_problem(name)
    if problem is not None:
        raise PathError(f"{os.fsencode(path)!r}: {problem}; rename it")


def now_ns() -> int:
    return time.time_ns()

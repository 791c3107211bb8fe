"""Status of a tracked directory, streamed: the workspace, the tree and the stat cache are walked
side by side in one order (folder by folder, names in code-point order: the order of a tree
walk), so memory holds one folder's names and the changes found, never a record per file of
the dataset. Files whose stat matches the stat cache are not read; the others are hashed in
parallel batches, one folder at a time. A fresh stat cache is written as the walk goes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastreg._files import stat_files
from fastreg._hash import HashedFile
from fastreg.chunking import default_chunker
from fastreg.errors import FileSystemError
from fastreg.objects import tree as tr
from fastreg.repo.cache import Cache, is_workspace_tmp
from fastreg.repo.statcache import Entry, StatCacheWriter, canonical, stream

HASH_BATCH = 64


@dataclass(slots=True)
class Changes:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # gone from the workspace, in the cache
    not_pulled: list[str] = field(default_factory=list)  # gone from the workspace, never in the cache


class _Ahead:
    """One item of look-ahead over an iterator of (rel, value) in canonical order."""

    def __init__(self, it: Iterator[tuple[str, object]]) -> None:
        self.it = it
        self.head: tuple[str, object] | None = None
        self.key: list[str] | None = None
        self.advance()

    def advance(self) -> None:
        self.head = next(self.it, None)
        self.key = canonical(self.head[0]) if self.head is not None else None


def scan(root: Path, tree: Iterator[tuple[str, tr.FileRecord]], old_stats: Path, writer: StatCacheWriter,
         cache: Cache, pool: ThreadPoolExecutor) -> Changes:
    """Compare the files under root with a tree walk (`tree`, canonical order); `old_stats` is the
    stat cache file to trust for unchanged files; `writer` receives the fresh one."""
    s = _Scan(tree, old_stats, writer, cache, pool)
    s.walk(str(root), "")
    s.gone_before(None)
    return s.out


Hashed = tuple[bytes, bytes, tuple[int, int, int], bool]  # digest, chunks, stat key, from the old cache


class _Scan:
    def __init__(self, tree: Iterator[tuple[str, tr.FileRecord]], old_stats: Path, writer: StatCacheWriter,
                 cache: Cache, pool: ThreadPoolExecutor) -> None:
        self.out = Changes()
        self.expected = _Ahead(tree)
        self.known = _Ahead(stream(old_stats))
        self.writer = writer
        self.cache = cache
        self.pool = pool
        self.chunker = default_chunker()

    def walk(self, d: str, prefix: str) -> None:
        """Files in canonical order: a folder's entries by name, subfolders where they fall."""
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise FileSystemError(f"cannot list {d}: {exc.strerror}") from None
        files: list[tuple[str, str]] = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self.run(files)
                files = []
                self.walk(entry.path, prefix + entry.name + "/")
            elif entry.is_file() and not is_workspace_tmp(entry.name):
                files.append((prefix + entry.name, entry.path))
        self.run(files)

    def gone_before(self, key: list[str] | None) -> None:
        """Everything the tree has before key (None: all that is left) is not in the workspace."""
        e = self.expected
        while e.head is not None and e.key is not None and (key is None or e.key < key):
            rel, rec = e.head
            assert isinstance(rec, tr.FileRecord)
            (self.out.deleted if self.cache.has_file(rec.digest) else self.out.not_pulled).append(rel)
            e.advance()

    def cached(self, rel: str, st: tuple[int, int, int, int]) -> Entry | None:
        """The old stat cache's entry for rel when its stat still matches."""
        k, key = self.known, canonical(rel)
        while k.head is not None and k.key is not None and k.key < key:
            k.advance()
        if k.head is None or k.head[0] != rel:
            return None
        entry = k.head[1]
        assert isinstance(entry, tuple)
        return entry if (entry[0], entry[1], entry[2]) == st[:3] else None

    def run(self, files: list[tuple[str, str]]) -> None:
        """Files of one folder (rel, path), in order, up to its next subfolder."""
        if not files:
            return
        try:
            stats = stat_files([p for _, p in files])
        except OSError as exc:
            raise FileSystemError(f"cannot stat {exc.filename}: {exc.strerror}") from None
        present = [(rel, path, st) for (rel, path), st in zip(files, stats, strict=True) if st is not None]
        digests = self._digests(present)
        e = self.expected
        for rel, _, _ in present:
            self.gone_before(canonical(rel))
            digest, chunks, stat_key, trusted = digests[rel]
            if e.head is not None and e.head[0] == rel:
                rec = e.head[1]
                assert isinstance(rec, tr.FileRecord)
                if rec.digest != digest:
                    self.out.modified.append(rel)
                e.advance()
            else:
                self.out.added.append(rel)
            # An entry that matched the old cache stays (it was recordable then and nothing
            # changed); a new hash is recorded unless it is racy (the writer decides).
            self.writer.append(rel, stat_key, digest, chunks, settled=trusted)

    def _digests(self, present: list[tuple[str, str, tuple[int, int, int, int]]]) -> dict[str, Hashed]:
        """From the old stat cache where the stat matches, else hashed (parallel batches)."""
        out: dict[str, Hashed] = {}
        misses = []
        for rel, path, st in present:
            entry = self.cached(rel, st)
            if entry is None:
                misses.append((rel, path, st))
            else:
                out[rel] = (entry[3], entry[4], (st[0], st[1], st[2]), True)
        batches = [misses[i : i + HASH_BATCH] for i in range(0, len(misses), HASH_BATCH)]

        def work(batch: list[tuple[str, str, tuple[int, int, int, int]]]) -> list[HashedFile]:
            try:
                return self.chunker.hash_files([p for _, p, _ in batch])
            except OSError as exc:
                raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None

        for batch, results in zip(batches, self.pool.map(work, batches), strict=True):
            for (rel, _, st), h in zip(batch, results, strict=True):
                out[rel] = (h.digest, h.chunks, (st[0], st[1], st[2]), False)
        return out

"""Status of a tracked directory, folder by folder.

Each folder of the workspace is read and stat'ed in one native pass (_files.list_folder, in the
pool, a few folders ahead of the walk) and its fingerprint compared with the stat cache's record
for it: a folder with the fingerprint and the tree node that were recorded is unchanged, and none
of its files or tree entries is looked at. Any other folder is compared file by file: the stat
cache's entries for that folder, the tree node's entries, and a hash (parallel batches) of the
files whose stat changed. Memory: the stat cache's index (a record per folder), one folder's
entries at a time, the listings read ahead and the changes found. A fresh stat cache is written
only when a folder was compared file by file."""

from __future__ import annotations

import os
import stat
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastreg._files import list_folder, stat_files
from fastreg._hash import HashedFile
from fastreg.chunking import default_chunker
from fastreg.errors import DecodeError, FileSystemError, MetafileError
from fastreg.objects import metafile
from fastreg.objects import tree as trees
from fastreg.repo.cache import WORKSPACE_TMP_MARK, Cache, is_workspace_tmp
from fastreg.repo.statcache import StatCache, StatCacheWriter, StatFile, canonical, fingerprint, split

HASH_BATCH = 64
AHEAD = 8  # folders listed ahead of the walk
TMP_MARK = WORKSPACE_TMP_MARK.encode()

Listing = tuple[bytes, int, int, list[str], int]  # list_folder's answer


@dataclass(slots=True)
class Changes:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # was in the workspace (stat cache), is gone
    not_pulled: list[str] = field(default_factory=list)  # never in this workspace (no stat cache entry)
    folders_read: int = 0  # folders compared file by file (the others matched their fingerprint)
    # For a check-out's plan (memory follows the changes): the tree's record of each modified,
    # deleted and not-pulled file, the workspace digest of each added and modified one, and temp
    # files an interrupted check-out left.
    records: dict[str, trees.FileRecord] = field(default_factory=dict)
    digests: dict[str, bytes] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)  # folders without files the workspace lacks

    def sort(self) -> None:
        for lst in (self.added, self.modified, self.deleted, self.not_pulled):
            lst.sort(key=canonical)


def listing(path: str) -> Listing:
    try:
        return list_folder(path, TMP_MARK)
    except OSError as exc:
        raise FileSystemError(f"cannot list {path}: {exc.strerror}") from None


_FILE = struct.Struct("=QqqQ")  # ino, size, mtime_ns, mode as list_folder packs them


def listed_files(text: bytes) -> dict[str, tuple[int, int, int]] | None:
    """name -> (ino, size, mtime_ns) of the files in a listing; None if it has odd entries."""
    out = {}
    i, n = 0, len(text)
    while i < n:
        tag = text[i]
        end = text.index(b"\0", i + 1)
        name = os.fsdecode(text[i + 1 : end])
        i = end + 1
        if tag == 0x46:  # F
            ino, size, mtime, _ = _FILE.unpack_from(text, i)
            out[name] = (ino, size, mtime)
            i += _FILE.size
        elif tag != 0x44:  # neither F nor D
            return None
    return out


def scan(root: Path, tree: trees.DirRecord, old: StatFile, writer: StatCacheWriter, cache: Cache,
         pool: ThreadPoolExecutor, removals: bytes) -> Changes:
    """Compare the files under root with the tree `tree`; `old` is the stat cache to trust for
    unchanged files and folders; `writer` receives the fresh one (call commit() only if the
    returned changes have folders_read: otherwise the old cache is still exact). `removals`: the
    cache's removal token, read before anything was looked at."""
    s = _Scan(old, writer, cache, pool, len(tree.digest))
    s.stored = old.removals == removals
    s.folder(str(root), "", tree, pool.submit(listing, str(root)))
    if s.out.folders_read:
        s.keep_clean()
    s.out.sort()
    return s.out


def scan_target(root: Path, meta: metafile.Metafile, cache: Cache, stat: StatCache, pool: ThreadPoolExecutor,
                started: int) -> Changes:
    """scan() of a tracked directory with its stat cache: the fresh cache replaces the old one
    only if a folder was read (otherwise the old one is still exact); a tree node that cannot be
    decoded is a MetafileError naming the metafile. `started`: when the command began (racy rule)."""
    removals = cache.removals()  # before anything is looked at
    writer = StatCacheWriter(stat, started, removals)
    old = StatFile(writer.path)
    try:
        found = scan(root, trees.DirRecord(meta.size, meta.digest, meta.files), old, writer, cache, pool, removals)
    except DecodeError as exc:
        writer.abort()
        raise MetafileError(f"{meta.path}: {exc}") from None
    except BaseException:
        writer.abort()
        raise
    finally:
        old.close()
    if found.folders_read:
        writer.commit()
    else:
        writer.abort()
    return found


Hashed = tuple[bytes, bytes, tuple[int, int, int], bool]  # digest, chunks, stat key, from the old cache


class _Scan:
    def __init__(self, old: StatFile, writer: StatCacheWriter, cache: Cache, pool: ThreadPoolExecutor,
                 digest_size: int) -> None:
        """digest_size: the format of the tree compared with (files are hashed in it)."""
        self.out = Changes()
        self.old = old
        self.writer = writer
        self.cache = cache
        self.pool = pool
        self.chunker = default_chunker(digest_size)
        self.clean: list[str] = []  # folders that matched their record (copied if a new cache is written)
        self.stored = False  # whether the old cache's "stored" marks still hold (Builder.stored)

    def folder(self, path: str, prefix: str, tree: trees.DirRecord | None, listed: Future[Listing]) -> None:
        text, _, newest, subdirs, odd = listed.result()
        fp = fingerprint(text)
        rec = self.old.folder(prefix)
        if tree is not None and odd == 0 and rec is not None and rec.matches(fp, tree.digest):
            self.clean.append(prefix)
            subs = {name: trees.DirRecord(size, digest, files) for name, digest, size, files in rec.subs}
        else:
            self.out.folders_read += 1
            subs = self.compare(path, prefix, tree, fp, newest, odd)
        present = set(subdirs)
        names = sorted(present | set(subs))
        ahead: deque[tuple[str, Future[Listing]]] = deque()
        todo = iter(n for n in names if n in present)
        for name in names:
            while len(ahead) < AHEAD and (nxt := next(todo, None)) is not None:
                ahead.append((nxt, self.pool.submit(listing, os.path.join(path, nxt))))
            if name in present:
                _, fut = ahead.popleft()
                self.folder(os.path.join(path, name), prefix + name + "/", subs.get(name), fut)
            else:
                self.gone(prefix + name + "/", subs[name])

    def gone(self, prefix: str, rec_dir: trees.DirRecord) -> None:
        """A folder of the tree that is not in the workspace: every file under it, a deletion if
        it was here (the old stat cache has an entry for it), else never checked out here."""
        self.out.folders_read += 1
        if rec_dir.files == 0:
            trees.empty_folders(self.cache, rec_dir.digest, prefix[:-1], self.out.empty_folders.append)
            return
        here = self.old.had_under(prefix)
        names: dict[str, frozenset[str]] = {}
        for rel, rec in trees.walk(self.cache, rec_dir.digest, prefix, self.out.empty_folders.append):
            self.out.records[rel] = rec
            folder, name = split(rel)
            if folder not in names:
                names[folder] = self.old.names(folder) if here else frozenset()
            if name in names[folder]:
                self.out.deleted.append(rel)
                self.writer.seen(rel)
            else:
                self.out.not_pulled.append(rel)

    def keep_clean(self) -> None:
        for prefix in self.clean:
            rec = self.old.folder(prefix)
            assert rec is not None
            self.writer.keep(prefix, self.old.raw(prefix), rec, self.stored)

    def compare(self, path: str, prefix: str, tree: trees.DirRecord | None, fp: bytes, newest: int,
                odd: int) -> dict[str, trees.DirRecord]:
        """One folder's files, one by one; returns the tree's subfolders of it."""
        expected: dict[str, trees.FileRecord] = {}
        subs: dict[str, trees.DirRecord] = {}
        if tree is not None:
            for name, r in trees.iter_dir(self.cache, tree.digest):
                if isinstance(r, trees.DirRecord):
                    subs[name] = r
                else:
                    expected[name] = r
        try:
            with os.scandir(path) as it:
                files = []
                for e in it:
                    if not e.is_dir(follow_symlinks=False) and e.is_file():
                        if is_workspace_tmp(e.name):
                            self.out.leftovers.append(e.path)
                        else:
                            files.append((e.name, e.path))
            files.sort()
        except OSError as exc:
            raise FileSystemError(f"cannot list {path}: {exc.strerror}") from None
        try:
            stats = stat_files([p for _, p in files])
        except OSError as exc:
            raise FileSystemError(f"cannot stat {exc.filename}: {exc.strerror}") from None
        present = [(name, p, st) for (name, p), st in zip(files, stats, strict=True) if st is not None]
        known = self.old.entries(prefix)
        digests = self._digests(known, present)
        changed = False
        for name, _, st in present:
            digest, chunks, stat_key, trusted = digests[name]
            rec = expected.pop(name, None)
            if rec is None:
                self.out.added.append(prefix + name)
                self.out.digests[prefix + name] = digest
                changed = True
            elif rec.digest != digest:
                self.out.modified.append(prefix + name)
                self.out.digests[prefix + name] = digest
                self.out.records[prefix + name] = rec
                changed = True
            elif bool(st[3] & stat.S_IXUSR) != rec.executable:
                changed = True  # not a change status reports, but the folder is not the tree node
            # An entry that matched the old cache stays (it was recordable then and nothing
            # changed); a new hash is recorded unless it is racy (the writer decides).
            self.writer.append(prefix + name, stat_key, digest, chunks, settled=trusted)
        for name, rec in expected.items():  # in the tree, not in the workspace
            if name in known:  # it was here: deleted (and still known as such next time)
                self.out.deleted.append(prefix + name)
                self.writer.seen(prefix + name)
            else:  # never checked out here: no change, but the folder is not its tree node either
                self.out.not_pulled.append(prefix + name)
            self.out.records[prefix + name] = rec
            changed = True
        if tree is not None and not changed and odd == 0:
            self.writer.summary(prefix, fp, newest, tree.digest, tree.size, tree.files,
                                tuple((n, r.digest, r.size, r.files) for n, r in subs.items()))
        return subs

    def _digests(self, known: dict[str, tuple[int, int, int, bytes, bytes]],
                 present: list[tuple[str, str, tuple[int, int, int, int]]]) -> dict[str, Hashed]:
        """From the old stat cache where the stat matches, else hashed (parallel batches)."""
        out: dict[str, Hashed] = {}
        misses = []
        for name, path, st in present:
            entry = known.get(name)
            if (entry is not None and (entry[0], entry[1], entry[2]) == st[:3]
                    and len(entry[3]) == self.chunker.digest_size):
                out[name] = (entry[3], entry[4], (st[0], st[1], st[2]), True)
            else:
                misses.append((name, path, st))
        batches = [misses[i : i + HASH_BATCH] for i in range(0, len(misses), HASH_BATCH)]

        def work(batch: list[tuple[str, str, tuple[int, int, int, int]]]) -> list[HashedFile]:
            try:
                return self.chunker.hash_files([p for _, p, _ in batch])
            except OSError as exc:
                raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None

        for batch, results in zip(batches, self.pool.map(work, batches), strict=True):
            for (name, _, st), h in zip(batch, results, strict=True):
                out[name] = (h.digest, h.chunks, (st[0], st[1], st[2]), False)
        return out


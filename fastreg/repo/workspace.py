"""The workspace as commands see it: which targets a command line names, the files under a
tracked path with their digests (through the stat cache), and the records a tree holds."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastreg._files import stat_files
from fastreg._hash import HashedFile
from fastreg.chunking import default_chunker
from fastreg.errors import (
    DecodeError,
    FastregError,
    FileSystemError,
    MetafileError,
    PathError,
    UnmergedError,
)
from fastreg.objects import metafile, tree
from fastreg.repo.build import now_ns
from fastreg.repo.cache import is_workspace_tmp
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache, ever_here


def default_jobs() -> int:
    return max(2, os.cpu_count() or 2)


def read_meta_quiet(project: Project, t: Target) -> metafile.Metafile | None:
    """The metafile, None if there is none or it cannot be read; one a Git merge left with
    conflict markers is an error (recording over it would drop the other side)."""
    try:
        return project.read_meta(t, unmerged_ok=True)
    except UnmergedError:
        raise
    except FastregError:
        return None


# -- workspace state ---------------------------------------------------------------------------
def walk_workspace(root: Path, leftovers: list[str] | None = None
                    ) -> dict[str, os.stat_result | tuple[int, int, int, int]]:
    """relpath -> (ino, size, mtime_ns, mode) of every regular file under root (links to files
    followed).  Directory entries come from getdents (d_type, no stat), then the native core
    stats all files in one GIL-free pass.  Temp files of an interrupted checkout are skipped
    (and listed in leftovers, for checkout to delete)."""
    rels: list[str] = []
    paths: list[str] = []

    def walk(d: str, prefix: str) -> None:
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path, prefix + entry.name + "/")
                    elif entry.is_file():
                        if is_workspace_tmp(entry.name):
                            if leftovers is not None:
                                leftovers.append(entry.path)
                            continue
                        rels.append(prefix + entry.name)
                        paths.append(entry.path)
        except OSError as exc:
            raise FileSystemError(f"cannot list {d}: {exc.strerror}") from None

    walk(str(root), "")
    try:
        stats = stat_files(paths)
    except OSError as exc:
        raise FileSystemError(f"cannot stat {exc.filename}: {exc.strerror}") from None
    return {rel: st for rel, st in zip(rels, stats, strict=True) if st is not None}


def workspace_digests(root: Path, files: dict[str, os.stat_result | tuple[int, int, int, int]], sc: StatCache,
             pool: ThreadPoolExecutor, started: int, digest_size: int) -> dict[str, bytes]:
    """Digest of every workspace file in the format of digest_size (that of the version it is
    compared with): from the stat cache when stat matches and the entry is of that format, else
    by hashing (in parallel batches); new hashes are recorded in the stat cache."""
    out: dict[str, bytes] = {}
    misses: list[str] = []
    for rel, st in files.items():
        hit = sc.lookup(rel, st)
        if hit is None or len(hit[0]) != digest_size:
            misses.append(rel)
        else:
            out[rel] = hit[0]
    if misses:
        chunker = default_chunker(digest_size)
        batches = [misses[i : i + 64] for i in range(0, len(misses), 64)]

        def work(batch: list[str]) -> list[HashedFile]:
            try:
                return chunker.hash_files([os.path.join(root, r) for r in batch])
            except OSError as exc:
                raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None

        for batch, results in zip(batches, pool.map(work, batches), strict=True):
            for rel, h in zip(batch, results, strict=True):
                out[rel] = h.digest
                sc.record(rel, files[rel], h.digest, h.chunks, started)
    return out


def tree_files(project: Project, meta: metafile.Metafile) -> dict[str, tree.FileRecord]:
    if meta.kind == "file":
        return {meta.path: tree.FileRecord(meta.size, meta.digest, b"", meta.executable)}
    try:
        return dict(tree.walk(project.cache, meta.digest))
    except DecodeError as exc:
        raise MetafileError(f"{meta.path}: {exc}") from None


def under(path: str, subpath: str | None) -> bool:
    return subpath is None or path == subpath or path.startswith(subpath + "/")


def resolve_selection(project: Project, paths: Iterable[str]) -> list[tuple[Target, str | None]]:
    """Targets by data path or metafile, or (target, subpath) for paths inside a tracked
    directory; every target in the workspace when paths is empty."""
    paths = list(paths)
    if not paths:
        return [(t, None) for t in project.metafiles()]
    out: list[tuple[Target, str | None]] = []
    for p in paths:
        t = project.target(p)
        if t.meta.exists():
            out.append((t, None))
            continue
        owner = project.tracked_ancestor(t)
        if owner is None:
            raise PathError(f"{p}: not tracked (no metafile for it or a folder above it); run `fastreg add` first")
        out.append((owner, t.rel[len(owner.rel) + 1 :]))
    return out


@dataclass(slots=True)
class Selected:
    """One target a command line selected: its metafile, and the file or folder inside a tracked
    directory (None: all of it)."""

    target: Target
    meta: metafile.Metafile
    subpath: str | None


def select(project: Project, paths: Iterable[str]) -> list[Selected]:
    """Targets by data path or metafile, or paths inside a tracked directory; all by default."""
    return [Selected(t, project.read_meta(t), sub) for t, sub in resolve_selection(project, paths)]


def resolve_targets(project: Project, paths: Iterable[str]) -> list[Target]:
    paths = list(paths)
    if not paths:
        return project.metafiles()
    return [project.target(p, must_exist=True) for p in paths]


def workspace_records(project: Project, t: Target, meta: metafile.Metafile,
                      pool: ThreadPoolExecutor) -> dict[str, tree.FileRecord] | None:
    """What t's data in the workspace is, as {path relative to t (a file target: its name):
    record without chunks}, through the stat cache as status reads it. Files the metafile names
    that were never in this workspace (no stat cache entry) count as they are recorded, as `add`
    keeps them. None when none of t's data was ever here: the metafile says what it is."""
    if not os.path.lexists(t.data):
        return {} if ever_here(project.state_dir, t.rel) else None
    started = now_ns()
    sc = StatCache(project.state_dir, t.rel).load()
    if t.data.is_dir():
        files = walk_workspace(t.data)
        digests = workspace_digests(t.data, files, sc, pool, started, len(meta.digest))
    else:
        files = {t.name: os.stat(t.data)}
        digests = workspace_digests(t.data.parent, files, sc, pool, started, len(meta.digest))
    known = set(sc.entries)  # before save(), which keeps them: files that were here
    sc.save()
    out = {rel: tree.FileRecord(_stat_size(files[rel]), d, b"", _is_exec(files[rel])) for rel, d in digests.items()}
    if meta.kind == "dir" and t.data.is_dir() and project.cache.tree_path(meta.digest).exists():
        for rel, rec in walk_tree(project, meta):
            if rel not in out and rel not in known:
                out[rel] = rec
    return out


def _stat_size(st: os.stat_result | tuple[int, int, int, int]) -> int:
    return st.st_size if isinstance(st, os.stat_result) else st[1]


def _is_exec(st: os.stat_result | tuple[int, int, int, int]) -> bool:
    mode = st.st_mode if isinstance(st, os.stat_result) else st[3]
    return bool(mode & 0o100)


def walk_tree(project: Project, meta: metafile.Metafile,
              empty: Callable[[str], None] | None = None) -> Iterator[tuple[str, tree.FileRecord]]:
    try:
        yield from tree.walk(project.cache, meta.digest, empty=empty)
    except DecodeError as exc:
        raise MetafileError(f"{meta.path}: {exc}") from None


def has_subpath(project: Project, meta: metafile.Metafile, sub: str | None) -> bool:
    """The tracked directory holds the file or folder `sub` (the tree nodes on its path only)."""
    if sub is None:
        return True
    try:
        return tree.lookup(project.cache, meta.digest, sub) is not None
    except DecodeError as exc:
        raise MetafileError(f"{meta.path}: {exc}") from None

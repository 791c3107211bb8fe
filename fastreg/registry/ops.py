"""get, import, update and list: a registry used like a package manager for data.

A registry is untrusted input: metafile paths and tree entry names are checked (no '..', no
absolute paths, no separators inside names), every byte is verified against its digest by the
transfer layer, and output is written under a temp name and renamed, so nothing lands outside
the output path or half-written."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from fastreg import tmpnames
from fastreg.errors import (
    DirectoryPathError,
    FastregError,
    FileSystemError,
    MissingDataError,
    MissingPathError,
    NoRemoteError,
    PathError,
    StorageError,
    UsageError,
)
from fastreg.objects import metafile
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.registry.kinds import open_reader
from fastreg.registry.reader import Located, Reader, clean_path
from fastreg.repo.arrivals import Alongside, Arrivals
from fastreg.repo.cache import Cache
from fastreg.repo.project import Project, Target
from fastreg.transfer.fetch import FetchResult, damage_error
from fastreg.transfer.session import RemoteSession

if TYPE_CHECKING:
    from fastreg.repo.diff import DiffResult


def import_session(sources: list[metafile.ImportSource], cache: Cache, jobs: int | None) -> RemoteSession | None:
    """A session on the remote that holds the data of imports from one registry commit: its
    default remote as committed at rev_lock (not at the branch's newest commit: only `update`
    moves an import), reading into `cache` (the project's). None when there is nothing left to
    fetch: an import of a plain Git file has its bytes in the registry's Git at rev_lock, and a
    DVC project's data is read and converted by its reader; both are put into the cache here."""
    return open_reader(sources[0].url, sources[0].rev_lock, cache, jobs).import_source(sources)


def _git_file_into(reg: Reader, loc: Located, cache: Cache) -> tuple[bytes, int]:
    """A plain Git file of the registry into the cache; its digest and size."""
    data = reg.git_bytes(loc.target)
    return cache.put_bytes(data), len(data)


def moved_sources(metas: list[metafile.Metafile]) -> list[str | None]:
    """For each metafile, the commit its import source's branch (or the registry's default
    branch) is at now when that is no longer its rev_lock; None for pinned, unchanged,
    unreachable or not imported. One `git ls-remote` per import, no clone."""
    from fastreg.registry.mirror import moved_head

    return [None if m.source is None else moved_head(m.source.url, m.source.rev, m.source.rev_lock)
            for m in metas]


def _place(cache: Cache, files: list[tuple[str, FileRecord]], out: Path, arrivals: Arrivals | None = None,
           folders: tuple[str, ...] = (), always_folder: bool = False) -> None:
    """Materialize into a temp path beside out, then rename: nothing half-written at out.
    Each cache object is read, verified against its digest and copied in one native pass, in
    parallel batches."""
    from concurrent.futures import ThreadPoolExecutor

    tmp = tmpnames.beside(out, f".fastreg-get-{os.urandom(4).hex()}")

    def copy_batch(batch: list[tuple[Path, FileRecord]]) -> None:
        if arrivals is not None:  # the download may still be bringing them
            arrivals.wait_for([rec.digest for _, rec in batch])
        names = [out / dest.relative_to(tmp) if dest != tmp else out for dest, _ in batch]
        for err in cache.copy_verified([(dest, rec.digest, rec.executable) for dest, rec in batch], names):
            if err is not None:
                raise err

    try:
        if len(files) == 1 and files[0][0] == "" and not always_folder:
            copy_batch([(tmp, files[0][1])])
        else:
            tmp.mkdir()
            for rel in folders:
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            todo = []
            for rel, rec in files:
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                todo.append((dest, rec))
            with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
                list(pool.map(copy_batch, [todo[i : i + 64] for i in range(0, len(todo), 64)]))
        os.replace(tmp, out) if not out.exists() else _swap(tmp, out)
    except OSError as exc:
        _discard(tmp)
        raise FileSystemError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _swap(tmp: Path, out: Path) -> None:
    old = tmpnames.beside(out, f".fastreg-old-{os.urandom(4).hex()}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


def output_path(out: str | None, name: str) -> Path:
    """Where get writes: out, or inside out when it is an existing directory or ends with a
    slash (as cp does), or name in the current directory. Absolute and normalized."""
    if out is None:
        return Path(os.path.abspath(name))
    dest = Path(os.path.abspath(out))
    if out.endswith(("/", os.sep)) or (dest.is_dir() and not dest.is_symlink()):
        dest = dest / name
    return dest


@dataclass(frozen=True, slots=True)
class GetResult:
    out: Path
    files: int
    size: int
    downloaded: int
    commit: str


def get(url: str, path: str, out: str | None, rev: str | None, jobs: int | None,
        progress: Progress | None = None, force: bool = False) -> GetResult:
    with open_reader(url, rev, jobs=jobs) as reg:
        try:
            loc: Located | None = reg.locate(path)
        except DirectoryPathError:
            loc = None  # a folder of the Git repository: its files and the tracked paths in it
        name = PurePosixPath(clean_path(path)).name
        dest = output_path(out, name)
        if os.path.lexists(dest) and not force:
            raise PathError(f"{dest}: exists already; use --force to replace it, or -o to choose another output")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if loc is None:
            return _get_git_folder(reg, clean_path(path), dest, progress)
        if loc.meta is None:
            data = reg.git_bytes(loc.target)
            tmp = tmpnames.beside(dest, f".fastreg-get-{os.urandom(4).hex()}")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
            return GetResult(dest, 1, len(data), 0, reg.commit)
        cache = reg.cache
        got = reg.materials(loc, progress)
        res = _fetch_while(reg, got.files, loc.meta.digest, loc.path, progress,
                           lambda arrivals: _place(cache, got.files, dest, arrivals, got.folders))
    return GetResult(dest, got.count, got.size, res.bytes, reg.commit)


def _get_git_folder(reg: Reader, base: str, dest: Path, progress: Progress | None) -> GetResult:
    """A folder of the registry's Git repository, as a clone has it: its Git files (but the
    registry's own bookkeeping) and the tracked data inside it, downloaded into the reader's cache
    first, then placed under a temp name and renamed to dest (nothing half-written)."""
    files: list[tuple[str, FileRecord]] = []
    downloaded = 0
    for p, typ, _ in reg.ls_git(base):
        if typ == "blob" and not reg.hidden(p):
            digest, size = _git_file_into(reg, Located(p, None, None), reg.cache)
            files.append((p[len(base) + 1:], FileRecord(size, digest, b"")))
    folders: list[str] = []
    for target, meta in sorted(reg.metafiles().items()):
        if not target.startswith(base + "/"):
            continue
        rel = target[len(base) + 1:]
        got = reg.materials(Located(target, meta, None), progress)
        res = reg.fetch(got.files, meta.digest, progress)
        _raise_damage(res, got.files, target)
        downloaded += res.bytes
        files += [(f"{rel}/{p}" if p else rel, r) for p, r in got.files]
        folders += [f"{rel}/{f}" for f in got.folders]
        if got.kind == "dir" and not got.files:
            folders.append(rel)
    _place(reg.cache, files, dest, None, tuple(folders), always_folder=True)
    return GetResult(dest, len(files), sum(r.size for _, r in files), downloaded, reg.commit)


def _fetch_while(reg: Reader, files: list[tuple[str, FileRecord]], root: bytes, where: str,
                 progress: Progress | None, write: Callable[[Arrivals], object]) -> FetchResult:
    """Download files into the cache while write(arrivals) (which waits for each object with
    arrivals.wait_for) puts them into place in a thread of its own: the output fills up while
    later files still download. A failed download reports its own error, after write() stopped."""
    side = Alongside(reg.cache)
    side.start(write)
    try:
        res = reg.fetch(files, root, progress, on_arrival=side.arrivals.note)
    finally:
        side.close()
    _raise_damage(res, files, where)
    side.result()
    return res


def _raise_damage(res: FetchResult, files: list[tuple[str, FileRecord]], where: str) -> None:
    """A download that found damaged files fails naming each by its path in the registry (files:
    relative to `where`, the path that was asked for) (exit 3); the rest of what it brought is in
    the cache."""
    if res.damaged:
        wanted = {d.file.digest for d in res.damaged}
        names = {r.digest: f"{where}/{p}" if p else where for p, r in files if r.digest in wanted}
        raise damage_error(res.damaged, lambda d: names.get(d, d.hex()), res.files)


# -- import / update (inside a project) ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImportResult:
    target: str
    changed: bool
    files: int
    size: int
    downloaded: int
    commit: str
    rev: str | None


def _materialize_into_project(project: Project, reg: Reader, loc: Located, t: Target,
                              progress: Progress | None, fresh: bool = False,
                              record: Callable[[metafile.Metafile], None] | None = None
                              ) -> tuple[metafile.Metafile, int]:
    """Fetch what loc points at into the project cache; the metafile that describes it. fresh:
    t's data path does not exist, and a directory is checked out there while it downloads (on
    failure what was placed is removed again); record(meta) is called once it is whole and
    before it is renamed into place (a command killed between the two leaves a metafile whose
    import runs again, never data without its metafile)."""
    from fastreg.repo.checkout import checkout_new

    project.cache.ensure()
    source = metafile.ImportSource(reg.url, loc.path, reg.rev, reg.commit)
    if loc.meta is None:
        digest, size = _git_file_into(reg, loc, project.cache)
        return metafile.Metafile(t.name, "file", digest, size, 1, False, source), 0
    with reg:
        got = reg.materials(loc, progress)
        files = got.files
        executable = got.kind == "file" and files[0][1].executable
        meta = metafile.Metafile(t.name, got.kind, got.digest, got.size, got.count, executable, source)
        if fresh and got.kind == "dir":
            # Checked out beside its final name and renamed into place when whole: a command
            # killed meanwhile leaves only that folder, which the next import of it removes. The
            # stat cache is t's: the rename keeps every inode and stat the check-out recorded.
            beside = _import_tmp(t)
            _discard(beside)
            into = Target(t.rel, beside, t.meta)
            try:
                res = _fetch_while(reg, files, loc.meta.digest, loc.path, progress,
                                   lambda arrivals: checkout_new(project, into, meta, arrivals=arrivals))
                if record is not None:
                    record(meta)
                os.rename(beside, t.data)
            except BaseException:
                _discard(beside)
                raise
        else:
            res = reg.fetch(files, loc.meta.digest, progress)
            _raise_damage(res, files, loc.path)
    return meta, res.bytes


def _import_tmp(t: Target) -> Path:
    """Where a new imported folder is checked out before it is renamed to t.data (one name per
    target, so a rerun finds what a killed import left)."""
    return tmpnames.beside(t.data, ".fastreg-import")


def _moved_to(source: metafile.ImportSource, reg: Reader) -> str | None:
    """Where an import's data went in the registry at reg's commit when its path is gone: the
    tracked path whose metafile has the digest the import's tracked path had at rev_lock (a
    `fastreg move`), with the import's path inside it kept. None when nothing matches."""
    try:
        old = open_reader(source.url, source.rev_lock).locate(source.path)
    except FastregError:
        return None
    if old.meta is None:
        return None
    same = sorted(p for p, m in reg.metafiles().items() if m.digest == old.meta.digest)
    if not same:
        return None
    return same[0] + (f"/{old.subpath}" if old.subpath else "")


def import_(project: Project, url: str, path: str, out: str | None, rev: str | None, force: bool, jobs: int | None,
            progress: Progress | None = None) -> ImportResult:
    """Import path from the registry at url into the project. Without force, the target must
    not exist, unless it is this same import (the same url and path recorded in its metafile):
    then the import runs again, as a rerun after an interrupted one must (the check-out still
    protects local changes)."""
    from fastreg.repo.checkout import checkout

    reg = open_reader(url, rev, project.cache, jobs)
    loc = reg.locate(path)
    t = project.target(out or PurePosixPath(clean_path(path)).name)
    owner = project.tracked_ancestor(t)
    if owner is not None:
        raise PathError(f"{t.rel}: inside the tracked directory {owner.rel}; import somewhere else")
    wanted = loc.path
    again = False
    if t.meta.exists():
        with contextlib.suppress(FastregError):
            prior = project.read_meta(t).source
            again = prior is not None and prior.url == reg.url and prior.path == wanted
    if (os.path.lexists(t.data) or t.meta.exists()) and not force and not again:
        raise PathError(f"{t.rel}: exists already; use --force to replace it, or -o to choose another path")
    fresh = not os.path.lexists(t.data)
    recorded: list[bool] = []

    def record(meta: metafile.Metafile) -> None:
        recorded.append(project.write_meta(t, meta))
        project.ignore(t)

    meta, downloaded = _materialize_into_project(project, reg, loc, t, progress, fresh, record)
    if not recorded:
        record(meta)
    changed = recorded[0]
    if not fresh and force and not again:
        if t.data.is_dir() and not t.data.is_symlink():
            shutil.rmtree(t.data)
        else:
            t.data.unlink()
    if not (fresh and meta.kind == "dir"):  # a new directory was checked out while it downloaded
        checkout(project, [t.rel], force=force and not again)
    return ImportResult(t.rel, changed, meta.files, meta.size, downloaded, reg.commit, rev)


def update(project: Project, target: str, rev: str | None, jobs: int | None,
           progress: Progress | None = None, path: str | None = None) -> ImportResult:
    """Re-resolve an import: without rev, follow the recorded rev (a branch moves, a tag or
    commit stays); with rev, switch to it; with path, follow the data to a new path in the
    registry (it was moved there). Only what the cache lacks is downloaded."""
    from fastreg.repo.checkout import checkout

    t = project.target(target, must_exist=True)
    meta = project.read_meta(t)
    if meta.source is None:
        raise PathError(f"{t.rel}{metafile.METAFILE_SUFFIX} is not an import (no [import] source); "
                           "`fastreg update` only follows data imported with `fastreg import`")
    want = rev if rev is not None else meta.source.rev
    reg = open_reader(meta.source.url, want, project.cache, jobs)
    source_path = clean_path(path) if path is not None else meta.source.path
    if reg.commit == meta.source.rev_lock and want == meta.source.rev and source_path == meta.source.path:
        return ImportResult(t.rel, False, meta.files, meta.size, 0, reg.commit, want)
    try:
        loc = reg.locate(source_path)
    except MissingPathError as exc:
        moved = _moved_to(meta.source, reg) if path is None else None
        if moved is None:
            raise
        raise MissingPathError(f"{exc.message}; it moved: the same data is at {moved} there; run `fastreg update "
                               f"{t.rel}{metafile.METAFILE_SUFFIX} --path {moved}` to follow it") from None
    new, downloaded = _materialize_into_project(project, reg, loc, t, progress)
    old_text = t.meta.read_text()
    changed = project.write_meta(t, new)
    try:
        checkout(project, [t.rel])
    except BaseException:
        # A failed update changes nothing the user sees: the metafile goes back to the version the
        # workspace still has (a conflict stops the check-out before it touches a file).
        project.write_text_atomic(t.meta, old_text)
        raise
    return ImportResult(t.rel, changed, new.files, new.size, downloaded, reg.commit, want)


# -- diff ------------------------------------------------------------------------------------
def diff(url: str, a: str, b: str | None, path: str | None) -> DiffResult:
    """What changed in the registry's tracked data from revision a to b (default: the default
    branch), under path if given: from metafiles and the tree nodes that differ (a DVC project's:
    its outs and manifests), no data."""
    reg_a, reg_b = open_reader(url, a), open_reader(url, b)
    with reg_a, reg_b:
        return diff_readers(reg_a, reg_b, path, (a, b or "default branch"))


def diff_readers(reg_a: Reader, reg_b: Reader, path: str | None,
                 names: tuple[str, str]) -> DiffResult:
    """diff() of two readers of one registry (names: what the sides are called)."""
    from fastreg.repo.diff import DiffResult, overlaps

    a, b = names
    metas_a = reg_a.metafiles()
    metas_b = reg_b.metafiles()
    if reg_a.kind != reg_b.kind and metas_a and metas_b:
        raise UsageError(f"{reg_b.url}: {a} is a {reg_a.kind} revision and {b} a {reg_b.kind} one; "
                         "diff --repo compares two revisions of one kind")
    # A revision that tracks nothing (before `dvc init` or `fastreg init`) is an empty registry of
    # the other side's kind: its reader is never asked about a path it does not have.
    older = reg_a if metas_a or not metas_b else reg_b
    newer = reg_b if metas_b or not metas_a else reg_a
    within = [clean_path(path)] if path else None
    pairs = [(p, metas_a.get(p), metas_b.get(p)) for p in sorted(metas_a.keys() | metas_b.keys())
             if within is None or any(overlaps(p, w) for w in within)]
    sides = f"{a} ({reg_a.commit[:10]})", f"{b} ({reg_b.commit[:10]})"
    return DiffResult(*sides, older.diff(newer, pairs, within))


# -- list ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    type: str  # "file" or "dir"
    size: int | None  # None: the registry does not record it (a file inside a DVC directory)
    tracked: bool
    files: int | None = None
    source: metafile.ImportSource | None = None  # imported data: where from (this entry's own path there)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "type": self.type, "size": self.size, "tracked": self.tracked}
        if self.files is not None:
            out["files"] = self.files
        if self.source is not None:
            out["import"] = {"url": self.source.url, "path": self.source.path, "rev": self.source.rev,
                             "rev_lock": self.source.rev_lock}
        return out


def _within(source: metafile.ImportSource | None, entries: list[Entry], target: str) -> list[Entry]:
    """Entries inside an imported tracked path, each with its own path in the source registry."""
    if source is None:
        return entries
    return [dataclasses.replace(e, source=dataclasses.replace(
        source, path=source.path + e.path[len(target):])) for e in entries]


def list_(url: str, path: str | None, rev: str | None, recursive: bool, tracked_only: bool,
          unreadable: list[str] | None = None) -> list[Entry]:
    with open_reader(url, rev) as reg:
        return list_at(reg, path, recursive, tracked_only, unreadable)


def list_at(reg: Reader, path: str | None, recursive: bool, tracked_only: bool,
            unreadable: list[str] | None = None) -> list[Entry]:
    """The entries at path; with `unreadable` a list, a tracked folder whose contents cannot be
    read from the remote is named there and the rest is listed, else that failure is raised."""
    base = clean_path(path) if path else ""
    if base:
        try:
            loc: Located | None = reg.locate(base)
        except DirectoryPathError:
            loc = None  # a folder of the Git repository: listed from Git below
        except MissingPathError:
            if not any(t.startswith(base + "/") for t in reg.metafiles()):
                raise
            loc = None  # a folder only tracked paths are in (the outs of a DVC pipeline): no Git folder
        if loc is not None and loc.meta is not None:
            source = reg.provenance(loc.target)
            if loc.meta.kind == "dir":
                return _within(source, _list_tracked(reg, loc, recursive), loc.target)
            return [Entry(loc.target, "file", loc.meta.size, True, source=source)]
        if loc is not None:
            return [Entry(base, "file", len(reg.git_bytes(base)), False)]
    items: dict[str, Entry] = {}
    if not tracked_only:
        for p, typ, size in reg.ls_git(base):
            if typ == "blob" and not reg.hidden(p):
                items[p] = Entry(p, "file", size, False)
    _add_tracked(reg, base, recursive, items, unreadable)
    if recursive:
        return sorted(items.values(), key=lambda e: e.path)
    # Only the immediate children of base; deeper paths show as their top folder.
    out: dict[str, Entry] = {}
    for path_, e in items.items():
        rest = path_[len(base) + 1 :] if base else path_
        child = (base + "/" if base else "") + rest.split("/")[0]
        if child == path_:
            out[child] = e
        elif child not in out:
            out[child] = Entry(child, "dir", 0, False)
    return sorted(out.values(), key=lambda e: e.path)


def _add_tracked(reg: Reader, base: str, recursive: bool, items: dict[str, Entry],
                 unreadable: list[str] | None) -> None:
    """The tracked paths under base into items (recursive: and what is inside them)."""
    for target, meta in reg.metafiles().items():
        if base and not target.startswith(base + "/"):
            continue
        # what Git says, no manifest or tree node read (None where it does not say)
        listed = reg.known(Located(target, meta, None))
        source = reg.provenance(target)
        items[target] = Entry(target, meta.kind, listed.size, True, listed.files if meta.kind == "dir" else None,
                              source)
        if recursive and meta.kind == "dir":
            try:
                for e in _within(source, _list_tracked(reg, Located(target, meta, None), True), target):
                    items[e.path] = e
            except NoRemoteError:
                pass  # its tracked paths are listed; what is inside them needs the remote's trees
            except (StorageError, MissingDataError) as exc:
                if unreadable is None:
                    raise
                unreadable.append(f"{target}: {exc.message}")  # the rest is listed all the same


def _list_tracked(reg: Reader, loc: Located, recursive: bool) -> list[Entry]:
    """Entries inside a tracked directory, from its tree; no data. A folder's listing reads only
    the tree nodes on its path (one node, plus one shard of a sharded directory, per level) and
    the folder's own nodes; -R reads the folder's whole subtree (in parallel)."""
    found = reg.stat(loc)
    if found.kind == "file":
        return [Entry(loc.path, "file", found.size, True)]
    if recursive:
        return [Entry(f"{loc.path}/{rel}", "file", e.size, True) for rel, e in reg.listall(loc)]
    return [Entry(f"{loc.path}/{name}", e.kind, e.size, True, e.files) for name, e in reg.listdir(loc)]

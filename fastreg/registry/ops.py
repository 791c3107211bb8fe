"""get, import, update and list: a registry used like a package manager for data.

A registry is untrusted input: metafile paths and tree entry names are checked (no '..', no
absolute paths, no separators inside names), every byte is verified against its digest by the
transfer layer, and output is written under a temp name and renamed, so nothing lands outside
the output path or half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from fastreg import tmpnames
from fastreg.chunking import file_digest
from fastreg.errors import (
    DirectoryPathError,
    FastregError,
    FileSystemError,
    MetafileError,
    MissingPathError,
    NoRemoteError,
    PathError,
    RegistryError,
)
from fastreg.objects import metafile as mf
from fastreg.objects import tree as tr
from fastreg.objects.tree import DirRecord, FileRecord
from fastreg.progress import Progress
from fastreg.registry.git import Mirror, Resolved, user_cache_dir
from fastreg.repo import remotes as rm
from fastreg.repo.arrivals import Alongside, Arrivals
from fastreg.repo.cache import Cache
from fastreg.repo.project import Project, Target
from fastreg.transfer.fetch import FetchResult, damage_error
from fastreg.transfer.index import RemoteIndex, mirror_path
from fastreg.transfer.session import RemoteSession

if TYPE_CHECKING:
    from fastreg.repo.diff import DiffResult


def clean_path(path: str) -> str:
    p = PurePosixPath(path.strip())
    if p.is_absolute() or any(part in ("..", "") for part in p.parts) or str(p) in (".", ""):
        raise PathError(f"{path!r}: give a relative path inside the registry, without '..'")
    return p.as_posix()


def _safe_name(name: str, where: str) -> None:
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise RegistryError(f"registry tree {where} has an unsafe entry name {name!r}; refusing to write it")


class _LazyTrees:
    """A TreeStore that reads nodes from the cache, or from the remote on first use."""

    def __init__(self, session: RemoteSession, cache: Cache) -> None:
        self.session = session
        self.cache = cache

    def get_tree(self, digest: bytes) -> bytes:
        return self.session.fetch_tree_node(digest)

    def put_tree(self, data: bytes) -> bytes:
        return self.cache.put_tree(data)


@dataclass(frozen=True, slots=True)
class Located:
    """What PATH is in the registry at a commit."""

    target: str  # the tracked path (or the git file)
    meta: mf.Metafile | None  # None: a plain Git file
    subpath: str | None  # inside a tracked directory


class Registry:
    def __init__(self, url: str, rev: str | None) -> None:
        self.git = Mirror(url)
        self.resolved: Resolved = self.git.resolve(rev)
        raw = self.git.read(self.resolved.commit, ".fastreg/config")
        try:
            self.config: dict[str, Any] = tomllib.loads(raw.decode()) if raw else {}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self.url}: its .fastreg/config is not valid TOML ({exc})") from None

    @property
    def url(self) -> str:
        return self.resolved.url

    @property
    def commit(self) -> str:
        return self.resolved.commit

    def meta_at(self, target: str) -> mf.Metafile | None:
        return self._meta(target, self.git.read(self.commit, target + mf.METAFILE_SUFFIX))

    def _meta(self, target: str, data: bytes | None) -> mf.Metafile | None:
        if data is None:
            return None
        try:
            return mf.loads(data.decode(), f"{self.url}:{target}{mf.METAFILE_SUFFIX}")
        except UnicodeDecodeError:
            raise MetafileError(f"{self.url}:{target}{mf.METAFILE_SUFFIX} is not text") from None

    def locate(self, path: str) -> Located:
        path = clean_path(path)
        parts = path.split("/")
        owners = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]  # the path, then its parents
        datas = self.git.read_many(self.commit, [o + mf.METAFILE_SUFFIX for o in owners])
        for owner, data in zip(owners, datas, strict=True):
            meta = self._meta(owner, data)
            if meta is None:
                continue
            if owner == path:
                return Located(path, meta, None)
            if meta.kind != "dir":
                break
            return Located(owner, meta, path[len(owner) + 1:])
        kind = self.git.kind(self.commit, path)
        if kind == "blob":
            return Located(path, None, None)
        if kind == "tree":
            raise DirectoryPathError(f"{path}: a Git directory in {self.url}, not tracked data; get its files one "
                                     "by one or the tracked paths inside it (see `fastreg list`)")
        raise MissingPathError(f"{path}: not found in {self.url} at {self.resolved.rev or 'the default branch'} "
                               f"({self.commit[:10]})")

    def session(self, cache: Cache, jobs: int | None) -> RemoteSession:
        try:
            remote = rm.pick(self.config, None, where=f"the registry {self.url}")
        except FastregError as exc:
            raise NoRemoteError(f"{exc.message.split(';')[0]} at {self.commit[:10]}, so its data cannot be read; "
                                "its maintainers must commit one (`fastreg remote add -d NAME URL`)") from None
        base = Path(self.url) if "://" not in self.url and Path(self.url).is_dir() else None
        if remote.kind == "local" and not Path(remote.url).expanduser().is_absolute() and base is None:
            raise RegistryError(f"the registry's remote {remote.name!r} is a relative local path ({remote.url}); "
                               "it only works for a registry on this machine")
        n = jobs or remote.default_jobs()
        store = rm.open_store(remote, base or Path.cwd(), n)
        mirror = RemoteIndex(mirror_path(user_cache_dir(), store.url), store.url).load()
        return RemoteSession(store, cache, mirror, n)


def import_session(source: mf.ImportSource, cache: Cache, jobs: int | None) -> RemoteSession | None:
    """A session on the remote that holds an import's data: its registry's default remote as
    committed at rev_lock (not at the branch's newest commit: only `update` moves an import),
    reading into `cache` (the project's). An import of a plain Git file has its bytes in the
    registry's Git at rev_lock: they are read from there into the cache (as `import` did), and
    there is no session (None)."""
    reg = Registry(source.url, source.rev_lock)
    loc = reg.locate(source.path)
    if loc.meta is None:
        _git_file_into(reg, loc, cache)
        return None
    return reg.session(cache, jobs)


def _git_file_into(reg: Registry, loc: Located, cache: Cache) -> tuple[bytes, int]:
    """A plain Git file of the registry into the cache; its digest and size."""
    data = reg.git.read(reg.commit, loc.target) or b""
    tmp = cache.tmp_path()
    tmp.write_bytes(data)
    digest = file_digest(tmp)
    cache.adopt(tmp, digest)
    return digest, len(data)


def moved_sources(metas: list[mf.Metafile]) -> list[str | None]:
    """For each metafile, the commit its import source's branch (or the registry's default
    branch) is at now when that is no longer its rev_lock; None for pinned, unchanged,
    unreachable or not imported. One `git ls-remote` per import, no clone."""
    from fastreg.registry.git import moved_head

    return [None if m.source is None else moved_head(m.source.url, m.source.rev, m.source.rev_lock)
            for m in metas]


def user_cache() -> Cache:
    # Output of get is an ordinary, writable file: reflink where the filesystem can, else a copy.
    cache = Cache(user_cache_dir() / "cache", ("reflink", "copy"))
    cache.ensure()
    return cache


@dataclass(frozen=True, slots=True)
class Materials:
    """What a located path is made of: every file to materialize as (path relative to the
    output, '' for a single file; record), and the kind, digest, size and file count they form."""

    files: list[tuple[str, FileRecord]]
    kind: Literal["dir", "file"]
    digest: bytes
    size: int
    count: int
    folders: tuple[str, ...] = ()  # folders of the tree with no file in them (made too)

    @staticmethod
    def single(rec: FileRecord) -> Materials:
        return Materials([("", rec)], "file", rec.digest, rec.size, 1)


def select_files(reg: Registry, loc: Located, session: RemoteSession, cache: Cache) -> Materials:
    """The files of a tracked path (or of a file or folder inside one), reading only the tree
    nodes it needs into `cache`."""
    assert loc.meta is not None
    meta = loc.meta
    if meta.kind == "file":
        if cache.has_file(meta.digest):
            rec = FileRecord(meta.size, meta.digest, b"", meta.executable)
        else:
            rec = session.fetch_record(meta.digest, meta.size)
            session.refresh_from_hints([meta.digest])
        return Materials.single(rec)
    if loc.subpath is not None:
        # One file inside a tracked directory: read only the tree nodes on its path, and the
        # index segments its node's locator hint names (a few KB, not the whole manifest).
        located = tr.locate(_LazyTrees(session, cache), meta.digest, loc.subpath)
        if located is not None:
            node, frec = located
            if isinstance(frec, FileRecord):
                if not cache.has_file(frec.digest):
                    session.refresh_from_hints([node])
                return Materials.single(frec)
    session.fetch_trees([meta.digest])
    digest = meta.digest
    if loc.subpath is not None:
        found = tr.lookup(cache, meta.digest, loc.subpath)
        if found is None:
            raise MissingPathError(f"{loc.target}/{loc.subpath}: not in the tracked directory {loc.target} "
                                   f"of {reg.url}")
        if isinstance(found, FileRecord):
            return Materials.single(found)
        digest = found.digest
    files = []
    folders: list[str] = []
    for rel, rec in tr.walk(cache, digest, empty=folders.append):
        for part in rel.split("/"):
            _safe_name(part, digest.hex())
        files.append((rel, rec))
    for rel in folders:
        for part in rel.split("/"):
            _safe_name(part, digest.hex())
    return Materials(files, "dir", digest, sum(r.size for _, r in files), len(files), tuple(folders))


def _place(cache: Cache, files: list[tuple[str, FileRecord]], out: Path, arrivals: Arrivals | None = None,
           folders: tuple[str, ...] = ()) -> None:
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
        if len(files) == 1 and files[0][0] == "":
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
    reg = Registry(url, rev)
    loc = reg.locate(path)
    name = PurePosixPath(clean_path(path)).name
    dest = output_path(out, name)
    if os.path.lexists(dest) and not force:
        raise PathError(f"{dest}: exists already; use --force to replace it, or -o to choose another output")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if loc.meta is None:
        data = reg.git.read(reg.commit, loc.target) or b""
        tmp = tmpnames.beside(dest, f".fastreg-get-{os.urandom(4).hex()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return GetResult(dest, 1, len(data), 0, reg.commit)
    cache = user_cache()
    with reg.session(cache, jobs) as session:
        got = select_files(reg, loc, session, cache)
        res = _fetch_while(session, cache, got.files, loc.meta.digest, progress,
                           lambda arrivals: _place(cache, got.files, dest, arrivals, got.folders))
    return GetResult(dest, got.count, got.size, res.bytes, reg.commit)


def _fetch_while(session: RemoteSession, cache: Cache, files: list[tuple[str, FileRecord]], root: bytes,
                 progress: Progress | None, write: Callable[[Arrivals], object]) -> FetchResult:
    """Download files into the cache while write(arrivals) (which waits for each object with
    arrivals.wait_for) puts them into place in a thread of its own: the output fills up while
    later files still download. A failed download reports its own error, after write() stopped."""
    side = Alongside(cache)
    side.start(write)
    try:
        res = session.fetch_files([r for _, r in files], [root], progress, on_arrival=side.arrivals.note)
    finally:
        side.close()
    _raise_damage(res, files)
    side.result()
    return res


def _raise_damage(res: FetchResult, files: list[tuple[str, FileRecord]]) -> None:
    """A download that found damaged files fails naming each by its path (exit 3); the rest of
    what it brought is in the cache."""
    if res.damaged:
        wanted = {d.file.digest for d in res.damaged}
        names = {r.digest: p for p, r in files if r.digest in wanted}
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


def _materialize_into_project(project: Project, reg: Registry, loc: Located, t: Target, jobs: int | None,
                              progress: Progress | None, fresh: bool = False) -> tuple[mf.Metafile, int]:
    """Fetch what loc points at into the project cache; the metafile that describes it. fresh:
    t's data path does not exist, and a directory is checked out there while it downloads (on
    failure what was placed is removed again)."""
    from fastreg.repo.checkout import checkout_new

    project.cache.ensure()
    source = mf.ImportSource(reg.url, loc.target + (f"/{loc.subpath}" if loc.subpath else ""),
                             reg.resolved.rev, reg.commit)
    if loc.meta is None:
        digest, size = _git_file_into(reg, loc, project.cache)
        return mf.Metafile(t.name, "file", digest, size, 1, False, source), 0
    with reg.session(project.cache, jobs) as session:
        got = select_files(reg, loc, session, project.cache)
        files = got.files
        executable = got.kind == "file" and files[0][1].executable
        meta = mf.Metafile(t.name, got.kind, got.digest, got.size, got.count, executable, source)
        if fresh and got.kind == "dir":
            # Checked out beside its final name and renamed into place when whole: a command
            # killed meanwhile leaves only that folder, which the next import of it removes. The
            # stat cache is t's: the rename keeps every inode and stat the check-out recorded.
            beside = _import_tmp(t)
            _discard(beside)
            into = Target(t.rel, beside, t.meta)
            try:
                res = _fetch_while(session, project.cache, files, loc.meta.digest, progress,
                                 lambda arrivals: checkout_new(project, into, meta, arrivals=arrivals))
                os.rename(beside, t.data)
            except BaseException:
                _discard(beside)
                raise
        else:
            res = session.fetch_files([r for _, r in files], [loc.meta.digest], progress)
            _raise_damage(res, files)
    return meta, res.bytes


def _import_tmp(t: Target) -> Path:
    """Where a new imported folder is checked out before it is renamed to t.data (one name per
    target, so a rerun finds what a killed import left)."""
    return tmpnames.beside(t.data, ".fastreg-import")


def _moved_to(source: mf.ImportSource, reg: Registry) -> str | None:
    """Where an import's data went in the registry at reg's commit when its path is gone: the
    tracked path whose metafile has the digest the import's tracked path had at rev_lock (a
    `fastreg move`), with the import's path inside it kept. None when nothing matches."""
    try:
        old = Registry(source.url, source.rev_lock).locate(source.path)
    except FastregError:
        return None
    if old.meta is None:
        return None
    same = sorted(p for p, m in reg.git.metafiles(reg.commit).items() if m.digest == old.meta.digest)
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

    reg = Registry(url, rev)
    loc = reg.locate(path)
    t = project.target(out or PurePosixPath(clean_path(path)).name)
    owner = project.tracked_ancestor(t)
    if owner is not None:
        raise PathError(f"{t.rel}: inside the tracked directory {owner.rel}; import somewhere else")
    wanted = loc.target + (f"/{loc.subpath}" if loc.subpath else "")
    again = False
    if t.meta.exists():
        with contextlib.suppress(FastregError):
            prior = project.read_meta(t).source
            again = prior is not None and prior.url == reg.url and prior.path == wanted
    if (os.path.lexists(t.data) or t.meta.exists()) and not force and not again:
        raise PathError(f"{t.rel}: exists already; use --force to replace it, or -o to choose another path")
    fresh = not os.path.lexists(t.data)
    meta, downloaded = _materialize_into_project(project, reg, loc, t, jobs, progress, fresh)
    changed = project.write_meta(t, meta)
    project.ignore(t)
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
        raise PathError(f"{t.rel}{mf.METAFILE_SUFFIX} is not an import (no [import] source); "
                           "`fastreg update` only follows data imported with `fastreg import`")
    want = rev if rev is not None else meta.source.rev
    reg = Registry(meta.source.url, want)
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
                               f"{t.rel}{mf.METAFILE_SUFFIX} --path {moved}` to follow it") from None
    new, downloaded = _materialize_into_project(project, reg, loc, t, jobs, progress)
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
    branch), under path if given: from metafiles and the tree nodes that differ, no data."""
    from fastreg.repo.diff import DiffResult, classify, compare_metas, overlaps

    reg_a, reg_b = Registry(url, a), Registry(url, b)
    metas_a = reg_a.git.metafiles(reg_a.commit)
    metas_b = reg_b.git.metafiles(reg_b.commit)
    within = [clean_path(path)] if path else None
    pairs = [(p, metas_a.get(p), metas_b.get(p)) for p in sorted(metas_a.keys() | metas_b.keys())
             if within is None or any(overlaps(p, w) for w in within)]
    changed_dirs = [p for p, ma, mb in pairs if (ma is None or mb is None or ma.digest != mb.digest)
                    and any(m is not None and m.kind == "dir" for m in (ma, mb))]
    changes: list[tr.Change] = []
    cache = user_cache()
    with contextlib.ExitStack() as stack:
        store: tr.TreeStore = cache
        if changed_dirs:  # tree nodes come from the newer side's remote (the older one's if it has none)
            reg = reg_b if rm.default_name(reg_b.config) else reg_a
            store = _LazyTrees(stack.enter_context(reg.session(cache, None)), cache)
        for p, ma, mb in pairs:
            changes.extend(compare_metas(store, p, ma, mb))
    return DiffResult(f"{a} ({reg_a.commit[:10]})", f"{b or 'default branch'} ({reg_b.commit[:10]})",
                      classify(changes, within))


# -- list ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    type: str  # "file" or "dir"
    size: int
    tracked: bool
    files: int | None = None


def list_(url: str, path: str | None, rev: str | None, recursive: bool, tracked_only: bool) -> list[Entry]:
    reg = Registry(url, rev)
    base = clean_path(path) if path else ""
    if base:
        try:
            loc: Located | None = reg.locate(base)
        except DirectoryPathError:
            loc = None  # a folder of the Git repository: listed from Git below
        if loc is not None and loc.meta is not None:
            if loc.meta.kind == "dir":
                return _list_tracked(reg, loc, recursive)
            return [Entry(loc.target, "file", loc.meta.size, True)]
        if loc is not None:
            return [Entry(base, "file", len(reg.git.read(reg.commit, base) or b""), False)]
    git_entries = reg.git.ls_tree(reg.commit, base, recursive=True)
    items: dict[str, Entry] = {}
    for p, typ, size in git_entries:
        if typ != "blob" or p.startswith(".fastreg/") or os.path.basename(p) == ".gitignore":
            continue
        if p.endswith(mf.METAFILE_SUFFIX):
            target = p[: -len(mf.METAFILE_SUFFIX)]
            meta = reg.meta_at(target)
            if meta is not None:
                items[target] = Entry(target, meta.kind, meta.size, True, meta.files if meta.kind == "dir" else None)
                if recursive and meta.kind == "dir":
                    try:
                        for e in _list_tracked(reg, Located(target, meta, None), True):
                            items[e.path] = e
                    except NoRemoteError:
                        pass  # its tracked paths are listed; what is inside them needs the remote's trees
            continue
        if not tracked_only:
            items[p] = Entry(p, "file", size, False)
    if recursive:
        return sorted(items.values(), key=lambda e: e.path)
    # Only the immediate children of base; deeper paths show as their top folder.
    out: dict[str, Entry] = {}
    for path, e in items.items():
        rest = path[len(base) + 1 :] if base else path
        child = (base + "/" if base else "") + rest.split("/")[0]
        if child == path:
            out[child] = e
        elif child not in out:
            out[child] = Entry(child, "dir", 0, False)
    return sorted(out.values(), key=lambda e: e.path)


def _list_tracked(reg: Registry, loc: Located, recursive: bool) -> list[Entry]:
    """Entries inside a tracked directory, from its tree; no data. A folder's listing reads only
    the tree nodes on its path (one node, plus one shard of a sharded directory, per level) and
    the folder's own nodes; -R reads the folder's whole subtree (in parallel)."""
    assert loc.meta is not None
    cache = user_cache()
    with reg.session(cache, None) as session:
        trees = _LazyTrees(session, cache)
        digest, prefix = loc.meta.digest, loc.target
        if loc.subpath:
            found = tr.lookup(trees, digest, loc.subpath)
            if found is None:
                raise MissingPathError(f"{loc.target}/{loc.subpath}: not in the tracked directory {loc.target}")
            if isinstance(found, FileRecord):
                return [Entry(f"{loc.target}/{loc.subpath}", "file", found.size, True)]
            digest, prefix = found.digest, f"{loc.target}/{loc.subpath}"
        if recursive:
            session.fetch_trees([digest])
            return [Entry(f"{prefix}/{rel}", "file", rec.size, True) for rel, rec in tr.walk(cache, digest)]
        out = []
        for name, rec in tr.iter_dir(trees, digest):
            if isinstance(rec, DirRecord):
                out.append(Entry(f"{prefix}/{name}", "dir", rec.size, True, rec.files))
            else:
                out.append(Entry(f"{prefix}/{name}", "file", rec.size, True))
        return out

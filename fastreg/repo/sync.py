"""push, fetch, pull and status --remote: select what the targets need, then let the transfer
layer move it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker, iter_chunks
from fastreg.errors import (
    FastregError,
    FileSystemError,
    IntegrityError,
    InvariantError,
    MissingDataError,
    PathError,
    ReadOnlyStore,
    UsageError,
)
from fastreg.objects import metafile as mf
from fastreg.objects import pack as pk
from fastreg.objects import tree as tr
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.repo import remotes as rm
from fastreg.repo.arrivals import Alongside
from fastreg.repo.cache import Cache
from fastreg.repo.checkout import CheckoutResult, checkout
from fastreg.repo.gc import referenced_metas
from fastreg.repo.project import Project, Target
from fastreg.repo.workspace import resolve_selection, under
from fastreg.transfer.check import clear_damage, damage_recorded, load_damage
from fastreg.transfer.fetch import Damage, FetchResult, damage_error
from fastreg.transfer.gc import GcKeep, RemoteGcResult
from fastreg.transfer.index import RemoteIndex, mirror_path
from fastreg.transfer.push import PushWork
from fastreg.transfer.session import RemoteSession
from fastreg.transfer.snapshots import roots_digest


@dataclass(slots=True)
class Selected:
    target: Target
    meta: mf.Metafile
    subpath: str | None  # a file or folder inside a tracked directory, or None for all of it


FileSource = Callable[[], Iterable[FileRecord]]


@dataclass(slots=True)
class PushSources:
    """What a push sends, as sources that walk the trees again each time they are called (the
    upload walks them twice: to estimate, then to pack), so no list of every file is held.
    Subtrees the remote already holds whole (certified) are left out of the files to pack, the
    tree nodes to write and the node hints: a push with nothing new walks no file."""

    trees: list[list[bytes]] = field(default_factory=list)  # tree nodes to write, by depth
    records: list[FileRecord] = field(default_factory=list)  # chunk lists of single-file targets
    # every file of each target, for its locator hint (None: walking it would cross certified
    # subtrees, so the hint names every segment instead)
    roots: dict[bytes, FileSource | None] = field(default_factory=dict)
    sources: list[FileSource] = field(default_factory=list)  # the files not under a certified subtree
    certified: set[bytes] = field(default_factory=set)

    def files(self) -> Iterator[FileRecord]:
        for source in self.sources:
            yield from source()

    def add_levels(self, levels: list[list[bytes]]) -> None:
        seen = {d for level in self.trees for d in level}
        for depth, level in enumerate(levels):
            if depth == len(self.trees):
                self.trees.append([])
            self.trees[depth] += [d for d in level if d not in seen]


def select(project: Project, paths: Iterable[str]) -> list[Selected]:
    """Targets by data path or metafile, or paths inside a tracked directory; all by default."""
    return [Selected(t, project.read_meta(t), sub) for t, sub in resolve_selection(project, paths)]


_under = under


def open_remote(project: Project, name: str | None, jobs: int | None) -> tuple[rm.Remote, RemoteSession]:
    remote = rm.pick(project.config, name)
    n = jobs or remote.default_jobs()
    store = rm.open_store(remote, project.root, n)
    mirror = RemoteIndex(mirror_path(project.state_dir, store.url), store.url).load()
    return remote, RemoteSession(store, project.cache, mirror, n)


def _chunks_of_cached(project: Project, meta: mf.Metafile) -> FileRecord | None:
    """A single-file target's record, its chunk list recomputed from the cached file; None when
    the file is not in the local cache."""
    if meta.size <= WHOLE_FILE_LIMIT:
        return FileRecord(meta.size, meta.digest, b"", meta.executable)
    path = project.cache.file_path(meta.digest)
    try:
        [hashed] = default_chunker().hash_files([str(path)])
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileSystemError(f"cannot read {path}: {exc.strerror}") from None
    if hashed.digest != meta.digest:
        raise IntegrityError(f"cache object {path} is corrupt (content does not match its digest)")
    return FileRecord(hashed.size, hashed.digest, hashed.chunks, meta.executable)


def _constant(rec: FileRecord) -> FileSource:
    return lambda: (rec,)


def _chain(a: FileSource, b: FileSource) -> FileSource:
    return lambda: itertools.chain(a(), b())


def _push_selection(project: Project, selected: list[Selected], session: RemoteSession,
                    certificates: bool = True) -> PushSources:
    """What to push. Data that is not in the local cache is fine when the remote has it already
    (a clone that never pulled everything); anything else missing is an error, found by one
    streaming pass before anything is uploaded."""
    sel = PushSources()
    if not session.mirror.refreshed:
        session.refresh([])  # first: a remote gc since the last push makes the mirror forget what it knew
    lacking: list[str] = []  # the first few, and how many
    nlacking = 0
    cache = project.cache

    def on_remote(rec: FileRecord) -> bool:
        if not session.mirror.refreshed:
            session.refresh([])
        return all(session.mirror.has(d) for d, _ in iter_chunks(rec.chunks, rec.digest, rec.size))

    def walker(digest: bytes, subpath: str | None, skip: set[bytes]) -> FileSource:
        return lambda: (rec for path, rec in tr.walk_pruned(cache, digest, skip) if _under(path, subpath))

    for s in selected:
        certified: set[bytes] = set()
        if s.meta.kind == "file":
            rec = _chunks_of_cached(project, s.meta)
            if rec is None:
                rec = session.fetch_record(s.meta.digest, s.meta.size)
            elif rec.chunks:
                sel.records.append(rec)
            source: FileSource = _constant(rec)
        else:
            if not cache.tree_path(s.meta.digest).exists():
                try:
                    session.fetch_trees([s.meta.digest])
                except FastregError:
                    raise MissingDataError(f"{s.target.rel}: its data is neither in the local cache nor on the remote; "
                                       "nothing to push from here") from None
            certified = _certified(session, cache, s.meta.digest) if certificates else set()
            sel.certified |= certified
            sel.add_levels(tr.levels_pruned(cache, s.meta.digest, certified))
            source = walker(s.meta.digest, s.subpath, certified)
        whole = None if s.meta.kind == "dir" and certified else source
        sel.sources.append(source)
        if s.meta.digest in sel.roots:  # the same data selected twice (two subfolders of one target)
            before = sel.roots[s.meta.digest]
            sel.roots[s.meta.digest] = _chain(before, whole) if before is not None and whole is not None else None
        else:
            sel.roots[s.meta.digest] = whole
        for rec in source():
            if not cache.has_file(rec.digest) and not on_remote(rec):
                nlacking += 1
                if len(lacking) < 1:
                    lacking.append(s.target.rel if s.meta.kind == "file" else f"{s.target.rel} ({rec.digest.hex()})")
    if lacking:
        more = f" and {nlacking - 1} more" if nlacking > 1 else ""
        raise MissingDataError(f"{lacking[0]}{more}: not in the local cache and not on the remote; run `fastreg add` "
                           "(or `fastreg fetch` from where it was pushed) first")
    return sel


def _certified(session: RemoteSession, cache: Cache, root: bytes) -> set[bytes]:
    """The nodes under root whose whole subtree the remote holds (tree.certified_nodes), from
    what the mirror knows of the remote's tree nodes; trees/ is listed once when the mirror does
    not know the root's node (a clone that did not push it). Empty for a remote that cannot be
    listed: then every file is looked at, as before."""
    mirror = session.mirror
    if root not in mirror.trees and not mirror.trees_listed:
        session.learn_trees()
    found = tr.certified_nodes(cache, root, mirror.trees.__contains__, mirror.certified)
    mirror.certified |= found
    return found


@dataclass(frozen=True, slots=True)
class SyncResult:
    remote: str
    files: int
    bytes: int
    packs: int
    requests: int
    skipped: int  # files already there
    imports: int = 0  # imported targets a push left alone (their data is in their registry)
    repaired: int = 0  # damaged packs (found by `fastreg check`) whose chunks a push put back


def push(project: Project, paths: Iterable[str], remote_name: str | None, jobs: int | None,
         progress: Progress | None = None) -> SyncResult:
    paths = list(paths)
    everything = select(project, paths)
    selected = [s for s in everything if s.meta.source is None]  # an import's bytes are in its registry
    imports = len(everything) - len(selected)
    if not selected and imports:
        return SyncResult("", 0, 0, 0, 0, 0, imports)
    remote, session = open_remote(project, remote_name, jobs)
    if remote.read_only:
        raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only; push to another remote")
    with session:
        damaged = load_damage(session.mirror.path)  # what `fastreg check` found damaged there
        distrust: frozenset[bytes] = frozenset()
        if damaged:
            session.refresh([])  # the damaged packs' segments, to know their chunks
            distrust = frozenset(session.damaged_chunks(damaged))
        suspect = damage_recorded(session.mirror.path)
        sel = _push_selection(project, selected, session, certificates=not suspect)

        def node_files() -> Iterator[tuple[bytes, Iterable[FileRecord]]]:
            return (nf for s in selected if s.meta.kind == "dir"
                    for nf in tr.file_nodes_pruned(project.cache, s.meta.digest, sel.certified))

        work = PushWork(sel.files, sel.trees, sel.records, sel.roots, node_files)
        res = session.push(work, remote.pack_size, progress, distrust)
        requests = res.requests
        repaired = 0
        if damaged:
            # The chunks are back in new packs: withdraw the damaged packs' index entries, then
            # write the locator hints again (they named the old segments).
            repaired = session.repair_damaged(damaged)
        if suspect and not paths:  # every target was looked at file by file again
            clear_damage(session.mirror.path)
        if damaged:
            again = session.push(work, remote.pack_size)
            requests += again.requests
        requests += _record_snapshot(project, session)
    return SyncResult(remote.name, res.files, res.bytes, res.packs, requests, 0, imports, repaired)


def project_roots(project: Project) -> tuple[pk.Root, ...]:
    """Every target the project refers to: its workspace's metafiles and, in a Git project,
    every metafile version in any commit of any branch or tag (imports included: their data may
    live on the same remote)."""
    metas = referenced_metas(project, all_commits=not project.config.get("core", {}).get("no_scm", False))
    return tuple(sorted({pk.Root(m.kind, m.digest, m.size) for m in metas}, key=lambda r: (r.kind, r.digest)))


def _record_snapshot(project: Project, session: RemoteSession) -> int:
    """After a push, leave the project's snapshot on the remote (transfer/snapshots.py), unless
    the one this clone wrote last has the same roots and is still there. Returns the requests."""
    import time

    roots = project_roots(project)
    digest = roots_digest(roots)
    marker = session.mirror.path.with_name("snapshot")
    known = None
    with contextlib.suppress(OSError, ValueError):
        last_digest, last_key = marker.read_text().split()
        known = last_key if last_digest == digest else None
    snap = pk.Snapshot(project.project_id, time.time_ns(), project.where, roots)
    key, requests = session.write_snapshot(snap, known)
    if key is not None:
        project.write_text_atomic(marker, f"{digest} {key}\n")
    return requests


#: Opens a session on the remote that holds an import's data (its registry's default remote at
#: rev_lock); supplied by the registry layer, which repo/ must not import.
#: A session on the remote that holds an import's data, or None when there is nothing to fetch
#: from one (the import is a plain Git file of its registry: the opener put it in the cache).
ImportOpener = Callable[[mf.ImportSource, Cache, "int | None"], "RemoteSession | None"]


@dataclass(slots=True)
class _Source:
    """One place data comes from: the project's remote, or one registry commit for imports."""

    name: str
    session: RemoteSession
    selected: list[Selected]


def _sources(project: Project, selected: list[Selected], remote_name: str | None, jobs: int | None,
             imports: ImportOpener | None, stack: contextlib.ExitStack) -> list[_Source]:
    """Group the selection by where its data lives: the project's own targets on its remote
    (opened only if there are any, so a project of imports alone needs no remote), each import on
    its registry's remote at its rev_lock."""
    out: list[_Source] = []
    own = [s for s in selected if s.meta.source is None]
    if own:
        remote, session = open_remote(project, remote_name, jobs)
        out.append(_Source(remote.name, stack.enter_context(session), own))
    # One session per registry commit; a single-file import asks on its own, since it may be a
    # plain Git file of the registry, which the opener puts into the cache (then: no session).
    by_source: dict[tuple[str, str, str], list[Selected]] = {}
    for s in selected:
        if s.meta.source is not None:
            one = s.meta.source.path if s.meta.kind == "file" else ""
            by_source.setdefault((s.meta.source.url, s.meta.source.rev_lock, one), []).append(s)
    for (url, lock, _), group in by_source.items():
        if imports is None:
            raise InvariantError(f"{group[0].target.rel}: imported from {url}; this command cannot read registries")
        source = group[0].meta.source
        assert source is not None
        try:
            opened = imports(source, project.cache, jobs)
        except FastregError as exc:
            raise type(exc)(f"{group[0].target.rel}{mf.METAFILE_SUFFIX}: its import source {url} at "
                            f"{lock[:10]}: {exc.message}") from None
        if opened is not None:
            out.append(_Source(f"registry {url}", stack.enter_context(opened), group))
    return out


def fetch(project: Project, paths: Iterable[str], remote_name: str | None, jobs: int | None,
          progress: Progress | None = None,
          trees_ready: Callable[[], None] | None = None,
          on_arrival: Callable[[], None] | None = None,
          imports: ImportOpener | None = None) -> tuple[SyncResult, list[Selected]]:
    """Bring the selection's data into the cache: the project's own targets from its remote,
    imported ones from their registry at rev_lock (through `imports`). trees_ready, if given, is
    called once every tree node is in the cache and before the file download starts (pull starts
    its check-out then)."""
    selected = select(project, paths)
    project.cache.ensure()
    cache = project.cache
    files = nbytes = requests = skipped = 0
    with contextlib.ExitStack() as stack:
        sources = _sources(project, selected, remote_name, jobs, imports, stack)
        for src in sources:
            src.session.check_format()
            src.session.fetch_trees([s.meta.digest for s in src.selected if s.meta.kind == "dir"])
        for s in selected:
            if s.meta.kind == "dir" and s.subpath is not None and \
                    not any(True for p, _ in tr.walk(cache, s.meta.digest) if _under(p, s.subpath)):
                raise PathError(f"{s.target.rel}/{s.subpath}: not in the tracked directory {s.target.rel}")

        if trees_ready is not None:
            trees_ready()
        damaged: list[Damage] = []
        for src in sources:
            res = _fetch_files(cache, src.session, src.selected, progress, on_arrival)
            files, nbytes, requests, skipped = (files + res.files, nbytes + res.bytes, requests + res.requests,
                                                skipped + res.skipped)
            damaged += res.damaged
        if damaged:
            raise damage_error(tuple(damaged),
                               _paths_of(cache, {d.file.digest for d in damaged}, selected), files)
    names = ", ".join(src.name for src in sources) or "nowhere (nothing selected)"
    return SyncResult(names, files, nbytes, 0, requests, skipped), selected


def _paths_of(cache: Cache, digests: set[bytes], selected: list[Selected]) -> Callable[[bytes], str]:
    """file digest -> its project path (the first of them) in the selection: a walk of the trees,
    paid only when something was damaged."""
    found: dict[bytes, str] = {}
    for s in selected:
        if s.meta.kind == "file":
            if s.meta.digest in digests:
                found.setdefault(s.meta.digest, s.target.rel)
            continue
        for p, r in tr.walk(cache, s.meta.digest):
            if r.digest in digests and _under(p, s.subpath):
                found.setdefault(r.digest, f"{s.target.rel}/{p}")
    return lambda d: found.get(d, f"file {d.hex()}")


def _fetch_files(cache: Cache, session: RemoteSession, selected: list[Selected],
                 progress: Progress | None, on_arrival: Callable[[], None] | None) -> FetchResult:
    # Single-file targets: their chunk lists first (a request each, before the download starts).
    singles = [FileRecord(s.meta.size, s.meta.digest, b"") if cache.has_file(s.meta.digest)
               else session.fetch_record(s.meta.digest, s.meta.size)
               for s in selected if s.meta.kind == "file"]

    def records() -> Iterator[FileRecord]:
        """Every file of the selection, streamed from the trees (a pull of a million files
        never holds a million records). Advanced by the download's planner, in a thread."""
        yield from singles
        for s in selected:
            if s.meta.kind == "dir":
                for p, r in tr.walk(cache, s.meta.digest):
                    if _under(p, s.subpath):
                        yield r

    total = None
    if progress is not None:  # one cheap pass for the bar's total: stats, no reads
        total = 0
        for s in selected:
            if s.meta.kind == "file":
                total += 0 if cache.has_file(s.meta.digest) else s.meta.size
            else:
                total += sum(r.size for p, r in tr.walk(cache, s.meta.digest)
                             if _under(p, s.subpath) and not cache.has_file(r.digest))
    return session.fetch_files(records(), [s.meta.digest for s in selected], progress, total, on_arrival)


def pull(project: Project, paths: Iterable[str], remote_name: str | None, jobs: int | None, force: bool,
         progress: Progress | None = None,
         imports: ImportOpener | None = None) -> tuple[SyncResult, CheckoutResult]:
    """fetch + checkout, overlapped: once the trees are here the check-out runs in a thread of
    its own, each batch of files waiting until the download has put its objects in the cache
    (repo/arrivals.py), so files land in the workspace while later ones still download instead of
    after the last byte. Same result as fetch then checkout: a conflict in the workspace stops the
    check-out before it changes anything, and a failed download reports the download's error."""
    paths = list(paths)
    side = Alongside(project.cache)
    try:
        fetched, _ = fetch(project, paths, remote_name, jobs, progress, trees_ready=lambda: side.start(
            lambda arrivals: checkout(project, paths, force=force, jobs=None, progress=None, arrivals=arrivals)),
            on_arrival=side.arrivals.note, imports=imports)
    finally:
        side.close()
    result = side.result()
    assert isinstance(result, CheckoutResult)  # fetch calls trees_ready before it returns
    return fetched, result


@dataclass(slots=True)
class RemoteStatus:
    """What a push of one target would send: files with a chunk the remote lacks, and those
    chunks (each counted once: what the upload costs, not the size of the files)."""

    target: Target
    missing_files: int = 0
    missing_bytes: int = 0  # of the missing chunks
    total_files: int = 0
    missing_chunks: int = 0


def status_remote(project: Project, paths: Iterable[str], remote_name: str | None) -> tuple[str, list[RemoteStatus]]:
    selected = [s for s in select(project, paths) if s.meta.source is None]  # imports: pushed by their registry
    remote, session = open_remote(project, remote_name, None)
    with session:
        session.check_format()
        session.refresh([s.meta.digest for s in selected])
        damaged = load_damage(session.mirror.path)  # what `fastreg check` found: not really there
        distrust = session.damaged_chunks(damaged) if damaged else set()
        suspect = damage_recorded(session.mirror.path)
        out = []
        for s in selected:
            st = RemoteStatus(s.target)
            recs: Iterable[FileRecord]
            if s.meta.kind == "file":
                local = _chunks_of_cached(project, s.meta)
                recs = [local if local is not None else session.fetch_record(s.meta.digest, s.meta.size)]
            else:
                if not project.cache.tree_path(s.meta.digest).exists():
                    session.fetch_trees([s.meta.digest])
                # Files under a subtree the remote holds whole are not looked at one by one.
                certified = set() if suspect else _certified(session, project.cache, s.meta.digest)
                found = tr.lookup(project.cache, s.meta.digest, s.subpath) if s.subpath else None
                st.total_files = s.meta.files if s.subpath is None else \
                    found.files if isinstance(found, tr.DirRecord) else 1
                recs = (r for p, r in tr.walk_pruned(project.cache, s.meta.digest, certified) if _under(p, s.subpath))
            seen: set[bytes] = set()
            for r in recs:
                if s.meta.kind == "file":
                    st.total_files += 1
                lacks = False
                for d, length in iter_chunks(r.chunks, r.digest, r.size):
                    if session.mirror.has(d) and d not in distrust:
                        continue
                    lacks = True
                    if d not in seen:
                        seen.add(d)
                        st.missing_chunks += 1
                        st.missing_bytes += length
                st.missing_files += lacks
            out.append(st)
    return remote.name, out


@dataclass(frozen=True, slots=True)
class RemoteGcOutcome:
    remote: str
    result: RemoteGcResult
    other_projects: int  # projects whose latest snapshot on the remote was kept too
    snapshots_dropped: int  # superseded snapshots deleted


def gc_remote(project: Project, metas: list[mf.Metafile], remote_name: str | None,
              grace: float | None = None) -> RemoteGcOutcome:
    """Clean the remote down to what `metas` and every other project's latest snapshot refer to
    (see transfer/gc.py for the rules, transfer/snapshots.py for the projects)."""
    remote, session = open_remote(project, remote_name, None)
    if remote.read_only:
        raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only; it cannot be cleaned")
    if grace is None:
        grace = remote.gc_grace
    with session:
        session.check_format()
        keep = _Keep(project, session)
        session.fetch_trees([m.digest for m in metas if m.kind == "dir" and m.source is None])
        for m in metas:
            # An import's data lives in its registry's remote, which may be this one: keep
            # whatever of it is here; what is not here is not this remote's to keep.
            keep.add(pk.Root(m.kind, m.digest, m.size), only_if_here=m.source is not None)
        entries = session.projects()
        others = [e for e in entries if e.project != project.project_id]
        for e in others:
            snap = session.read_snapshot(e.latest.key)
            for root in snap.roots if snap is not None else ():
                keep.add(root, only_if_here=True)
        result = session.gc(GcKeep(keep.chunks, keep.trees, keep.records, keep.roots), grace)
        import time

        now = time.time()
        superseded = [o for e in entries for o in e.older if now - o.mtime >= grace]
        session.delete([o.key for o in superseded])
    return RemoteGcOutcome(remote.name, result, len(others), len(superseded))


class _Keep:
    """What remote gc keeps: chunks, tree nodes, file records and root hints of a set of roots."""

    def __init__(self, project: Project, session: RemoteSession) -> None:
        self.cache = project.cache
        self.session = session
        self.chunks: set[bytes] = set()
        self.trees: set[bytes] = set()
        self.records: set[bytes] = set()
        self.roots: dict[bytes, list[bytes]] = {}

    def add(self, root: pk.Root, only_if_here: bool) -> None:
        """only_if_here: a root whose tree is not on this remote (another remote's data) is
        skipped instead of failing the gc."""
        if root.digest in self.roots:
            return
        if root.kind == "dir":
            if only_if_here:
                try:
                    self.session.fetch_trees([root.digest])
                except FastregError:
                    return
            self.trees.update(tr.walk_dirs(self.cache, root.digest))
            recs: Iterable[FileRecord] = (rec for _, rec in tr.walk(self.cache, root.digest))
        else:
            rec = self.session.fetch_record(root.digest, root.size)
            if rec.chunks:
                self.records.add(root.digest)
            recs = (rec,)
        chunks = self.roots.setdefault(root.digest, [])
        for rec in recs:
            for digest, _ in iter_chunks(rec.chunks, rec.digest, rec.size):
                self.chunks.add(digest)
                chunks.append(digest)


@dataclass(frozen=True, slots=True)
class RemoteProject:
    id: str
    pushed: float  # time of its latest snapshot (seconds since the epoch)
    roots: int
    where: str  # host:path of the clone
    this: bool  # this clone


def remote_projects(project: Project, remote_name: str | None) -> tuple[str, list[RemoteProject]]:
    """The projects with a snapshot on a remote."""
    remote, session = open_remote(project, remote_name, None)
    out = []
    with session:
        for e in session.projects():
            snap = session.read_snapshot(e.latest.key)
            if snap is not None:
                out.append(RemoteProject(e.project, snap.time_ns / 1e9, len(snap.roots), snap.where,
                                         e.project == project.project_id))
    return remote.name, out


def retire(project: Project, remote_name: str | None, ids: list[str],
           older_than: float | None) -> tuple[str, list[str]]:
    """Delete the snapshots of projects (this clone's when ids and older_than are empty): from
    the next remote gc on, their data is kept only if another project still refers to it."""
    import time

    remote, session = open_remote(project, remote_name, None)
    if remote.read_only:
        raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only")
    with session:
        entries = session.projects()
        known = {e.project for e in entries}
        if older_than is not None:
            cutoff = time.time() - older_than
            chosen = [e for e in entries if e.latest.mtime < cutoff and e.project not in ids]
            chosen += [e for e in entries if e.project in ids]
        else:
            wanted = ids or [project.project_id]
            missing = [i for i in wanted if i not in known]
            if missing:
                raise UsageError(f"no project {missing[0]!r} on remote {remote.name} (see `fastreg remote projects`)")
            chosen = [e for e in entries if e.project in wanted]
        session.retire(chosen)
    return remote.name, [e.project for e in chosen]

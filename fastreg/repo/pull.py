"""`fastreg fetch` and `fastreg pull`: the selection's data into the cache, from the project's
remote for its own targets and from their registry at rev_lock for imports; pull checks out
alongside the download."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from fastreg.errors import FastregError, InvariantError, PathError
from fastreg.objects import metafile, tree
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.repo.arrivals import Alongside
from fastreg.repo.cache import Cache
from fastreg.repo.checkout import CheckoutResult, checkout
from fastreg.repo.history import Revisions, committed_selection
from fastreg.repo.project import Project
from fastreg.repo.push import SyncResult
from fastreg.repo.remotes import open_remote
from fastreg.repo.workspace import Selected, has_subpath, select, under
from fastreg.transfer.fetch import Damage, FetchResult, damage_error
from fastreg.transfer.session import RemoteSession

#: A session on the remote that holds the data of imports from one registry commit (its default
#: remote at rev_lock), or None when there is nothing to fetch from one (a plain Git file of its
#: registry, or data of a DVC project: the opener put it in the cache). Supplied by the registry
#: layer, which repo/ must not import.
ImportOpener = Callable[[list[metafile.ImportSource], Cache, "int | None"], "RemoteSession | None"]


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
        sources = [s.meta.source for s in group if s.meta.source is not None]
        try:
            opened = imports(sources, project.cache, jobs)
        except FastregError as exc:
            raise type(exc)(f"{group[0].target.rel}{metafile.METAFILE_SUFFIX}: its import source {url} at "
                            f"{lock[:10]}: {exc.message}") from None
        if opened is not None:
            out.append(_Source(f"registry {url}", stack.enter_context(opened), group))
    return out


def fetch(project: Project, paths: Iterable[str], remote_name: str | None, jobs: int | None,
          progress: Progress | None = None,
          trees_ready: Callable[[list[Selected]], None] | None = None,
          on_arrival: Callable[[], None] | None = None,
          imports: ImportOpener | None = None,
          revisions: Revisions | None = None) -> tuple[SyncResult, list[Selected]]:
    """Bring the selection's data into the cache: the project's own targets from its remote,
    imported ones from their registry at rev_lock (through `imports`), and the versions
    `revisions` names in the Git history. trees_ready, if given, is called with the selection
    once every tree node is in the cache and before the file download starts (pull starts its
    check-out then)."""
    selected = select(project, paths)
    selected += committed_selection(project, revisions or Revisions(), selected)
    project.cache.ensure()
    cache = project.cache
    files = nbytes = requests = skipped = 0
    with contextlib.ExitStack() as stack:
        sources = _sources(project, selected, remote_name, jobs, imports, stack)
        for src in sources:
            src.session.check_format()
            src.session.fetch_trees([s.meta.digest for s in src.selected if s.meta.kind == "dir"])
        for s in selected:
            if s.meta.kind == "dir" and not has_subpath(project, s.meta, s.subpath):
                raise PathError(f"{s.target.rel}/{s.subpath}: not in the tracked directory {s.target.rel}")

        if trees_ready is not None:
            trees_ready(selected)
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
        for p, r in tree.walk(cache, s.meta.digest):
            if r.digest in digests and under(p, s.subpath):
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
                for p, r in tree.walk(cache, s.meta.digest):
                    if under(p, s.subpath):
                        yield r

    total = None
    if progress is not None:  # one cheap pass for the bar's total: stats, no reads
        total = 0
        for s in selected:
            if s.meta.kind == "file":
                total += 0 if cache.has_file(s.meta.digest) else s.meta.size
            else:
                total += sum(r.size for p, r in tree.walk(cache, s.meta.digest)
                             if under(p, s.subpath) and not cache.has_file(r.digest))
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

    def check_out(selected: list[Selected]) -> None:
        side.start(lambda arrivals: checkout(project, paths, force=force, arrivals=arrivals, selected=selected))

    try:
        fetched, _ = fetch(project, paths, remote_name, jobs, progress, trees_ready=check_out,
                           on_arrival=side.arrivals.note, imports=imports)
    finally:
        side.close()
    result = side.result()
    assert isinstance(result, CheckoutResult)  # fetch calls trees_ready before it returns
    return fetched, result

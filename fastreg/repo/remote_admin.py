"""The remote as a whole: what a push would send (`status --remote`), remote gc down to what the
projects on it refer to, and those projects (`remote projects`, `remote retire`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastreg.chunking import iter_chunks
from fastreg.errors import FastregError, ReadOnlyStore, UsageError
from fastreg.objects import metafile, pack, tree
from fastreg.objects.tree import FileRecord
from fastreg.repo.history import Revisions, committed_selection
from fastreg.repo.project import Project
from fastreg.repo.push import lacking_of
from fastreg.repo.remotes import open_remote, pick
from fastreg.repo.workspace import select
from fastreg.transfer.push_plan import Lacking
from fastreg.transfer.remote_gc import GcKeep, RemoteGcResult
from fastreg.transfer.session import RemoteSession


def status_remote(project: Project, paths: Iterable[str], remote_name: str | None,
                  revisions: Revisions | None = None) -> tuple[str, list[Lacking]]:
    """Per selected target (its path in `name`), and per version `revisions` names in the Git
    history, what a push would send: files with a chunk the remote lacks, and those chunks.
    Imports are left out: their registry pushes them."""
    workspace = select(project, paths)
    return lacking_of(project, workspace + committed_selection(project, revisions or Revisions(), workspace),
                      remote_name)


def cleanable(project: Project, remote_name: str | None) -> None:
    """Refuse a remote gc of a read-only remote (before a local gc deletes anything)."""
    remote = pick(project.config, remote_name)
    if remote.read_only:
        raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only; it cannot be cleaned "
                            "(nothing was deleted)")


@dataclass(frozen=True, slots=True)
class RemoteGcOutcome:
    remote: str
    result: RemoteGcResult
    other_projects: int  # projects whose latest snapshot on the remote was kept too
    snapshots_dropped: int  # superseded snapshots deleted


def gc_remote(project: Project, metas: list[metafile.Metafile], remote_name: str | None,
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
            keep.add(pack.Root(m.kind, m.digest, m.size), only_if_here=m.source is not None)
        entries = session.projects()
        others = [e for e in entries if e.project != project.project_id]
        for e in others:
            snap = session.read_snapshot(e.latest.key)
            for root in snap.roots if snap is not None else ():
                keep.add(root, only_if_here=True)
        result = session.gc(GcKeep(keep.chunks, keep.trees, keep.records, keep.roots), grace)
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

    def add(self, root: pack.Root, only_if_here: bool) -> None:
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
            self.trees.update(tree.walk_dirs(self.cache, root.digest))
            recs: Iterable[FileRecord] = (rec for _, rec in tree.walk(self.cache, root.digest))
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

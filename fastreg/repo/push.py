"""`fastreg push`: the selected targets' data to a remote, then this project's snapshot there.

The project side only says what is selected (metafiles, and the chunk lists of single files it
holds); what the remote lacks, the pruning of subtrees it holds whole and the upload are the
transfer layer's (transfer/push_plan.py, transfer/upload.py), in one `session.push` call."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker
from fastreg.errors import FastregError, FileSystemError, IntegrityError, ReadOnlyStore
from fastreg.objects import metafile, pack
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.repo.gc import referenced_metas
from fastreg.repo.history import Revisions, committed_selection
from fastreg.repo.project import Project, Target
from fastreg.repo.remotes import open_remote
from fastreg.repo.workspace import Selected, select
from fastreg.transfer.push_plan import Lacking, PushTarget
from fastreg.transfer.session import RemoteSession
from fastreg.transfer.snapshots import roots_digest


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a push, fetch or pull moved."""

    remote: str
    files: int
    bytes: int
    packs: int
    requests: int
    skipped: int  # files already there
    imports: int = 0  # imported targets a push left alone (their data is in their registry)
    repaired: int = 0  # damaged packs (found by `fastreg check`) whose chunks a push put back
    failed: tuple[str, ...] = ()  # push: one line per target left out (what it lacks, who has it)


def chunks_of_cached(project: Project, meta: metafile.Metafile) -> FileRecord | None:
    """A single-file target's record, its chunk list recomputed from the cached file; None when
    the file is not in the local cache."""
    if meta.size <= WHOLE_FILE_LIMIT:
        return FileRecord(meta.size, meta.digest, b"", meta.executable)
    path = project.cache.file_path(meta.digest)
    try:
        [hashed] = default_chunker(len(meta.digest)).hash_files([str(path)])
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileSystemError(f"cannot read {path}: {exc.strerror}") from None
    if hashed.digest != meta.digest:
        raise IntegrityError(f"cache object {path} is corrupt (content does not match its digest)")
    return FileRecord(hashed.size, hashed.digest, hashed.chunks, meta.executable)


def push_targets(project: Project, selected: list[Selected]) -> list[PushTarget]:
    """The transfer layer's description of a selection (imports left out by the caller)."""
    out = []
    for s in selected:
        rec = chunks_of_cached(project, s.meta) if s.meta.kind == "file" else None
        out.append(PushTarget(s.target.rel, s.meta.kind, s.meta.digest, s.meta.size, s.subpath, rec, s.meta.files))
    return out


def push(project: Project, paths: Iterable[str], remote_name: str | None, jobs: int | None,
         progress: Progress | None = None, revisions: Revisions | None = None) -> SyncResult:
    """Upload the selected targets (and the versions `revisions` names in the Git history) that
    the remote lacks. A target whose data is neither in the cache nor on the remote is left out,
    the others still go; SyncResult.failed says which and where the data may be."""
    paths = list(paths)
    workspace = select(project, paths)
    selection = workspace + committed_selection(project, revisions or Revisions(), workspace)
    return push_selected(project, selection, remote_name, jobs, progress, everything=not paths)


def push_selected(project: Project, selection: list[Selected], remote_name: str | None, jobs: int | None,
                  progress: Progress | None, everything: bool) -> SyncResult:
    """push() of a selection made already (everything: it is all of the workspace's targets)."""
    selected = [s for s in selection if s.meta.source is None]  # an import's bytes are in its registry
    imports = len(selection) - len(selected)
    if not selected and imports:
        return SyncResult("", 0, 0, 0, 0, 0, imports)
    remote, session = open_remote(project, remote_name, jobs)
    if remote.read_only:
        raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only; push to another remote")
    with session:
        res = session.push(push_targets(project, selected), remote.pack_size, progress, everything=everything)
        requests = res.requests + _record_snapshot(project, session)
        by_name = {s.target.rel: s.target for s in selected}
        failed = tuple(f"{f.name}: {f.detail}; {_who_has(project, by_name[f.name])}" for f in res.failed)
    return SyncResult(remote.name, res.files, res.bytes, res.packs, requests, 0, imports, res.repaired, failed)


def lacking_of(project: Project, selected: list[Selected], remote_name: str | None = None) -> tuple[str, list[Lacking]]:
    """What a push of the selection (imports left out) would send, per target."""
    own = [s for s in selected if s.meta.source is None]
    remote, session = open_remote(project, remote_name, None)
    with session:
        return remote.name, session.lacking(push_targets(project, own))


def _who_has(project: Project, target: Target) -> str:
    """Who can repair a version the remote lacks: whoever committed its metafile last (Git's
    author and commit), else whoever added it."""
    from fastreg import git_cli as git

    meta_rel = target.meta.relative_to(project.root).as_posix()
    try:
        out = git.run(["log", "-1", "--format=%an <%ae> in %h", "--", meta_rel], cwd=project.root,
                      check=False).stdout.decode(errors="replace").strip()
    except FastregError:
        out = ""
    if out:
        return f"run `fastreg push` in a clone that has it (last committed by {out})"
    return "run `fastreg push` where it was added (or `fastreg add` it again)"


def project_roots(project: Project) -> tuple[pack.Root, ...]:
    """Every target the project refers to: its workspace's metafiles and, in a Git project,
    every metafile version in any commit of any branch or tag (imports included: their data may
    live on the same remote)."""
    metas = referenced_metas(project, all_commits=not project.config.get("core", {}).get("no_scm", False))
    return tuple(sorted({pack.Root(m.kind, m.digest, m.size) for m in metas}, key=lambda r: (r.kind, r.digest)))


def _record_snapshot(project: Project, session: RemoteSession) -> int:
    """After a push, leave the project's snapshot on the remote (transfer/snapshots.py). Returns
    the requests it took."""
    roots = project_roots(project)
    snap = pack.Snapshot(project.project_id, time.time_ns(), project.where, roots)
    return session.write_snapshot(snap, roots_digest(roots))

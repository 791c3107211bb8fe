"""`fastreg push`: the selected targets' data to a remote, then this project's snapshot there.

The project side only says what is selected (metafiles, and the chunk lists of single files it
holds); what the remote lacks, the pruning of subtrees it holds whole and the upload are the
transfer layer's (transfer/push_plan.py, transfer/push.py), in one `session.push` call."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker
from fastreg.errors import FileSystemError, IntegrityError, ReadOnlyStore
from fastreg.objects import metafile, pack
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.repo.cache_gc import referenced_metas
from fastreg.repo.project import Project
from fastreg.repo.remotes import open_remote
from fastreg.repo.workspace import Selected, select
from fastreg.transfer.push_plan import PushTarget
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


def chunks_of_cached(project: Project, meta: metafile.Metafile) -> FileRecord | None:
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


def push_targets(project: Project, selected: list[Selected]) -> list[PushTarget]:
    """The transfer layer's description of a selection (imports left out by the caller)."""
    out = []
    for s in selected:
        rec = chunks_of_cached(project, s.meta) if s.meta.kind == "file" else None
        out.append(PushTarget(s.target.rel, s.meta.kind, s.meta.digest, s.meta.size, s.subpath, rec, s.meta.files))
    return out


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
        res = session.push(push_targets(project, selected), remote.pack_size, progress, everything=not paths)
        requests = res.requests + _record_snapshot(project, session)
    return SyncResult(remote.name, res.files, res.bytes, res.packs, requests, 0, imports, res.repaired)


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

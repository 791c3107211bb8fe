"""`fastreg status`: what changed in the workspace against the metafiles."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from fastreg.errors import MissingDataError, UnmergedError
from fastreg.objects import metafile
from fastreg.repo.build import now_ns
from fastreg.repo.project import Project, Target
from fastreg.repo.scan import scan_target
from fastreg.repo.statcache import StatCache, ever_here
from fastreg.repo.workspace import (
    default_jobs,
    resolve_targets,
    workspace_digests,
)


# -- status ------------------------------------------------------------------------------------
class State(StrEnum):
    """What status found for one tracked path (the values are the JSON output's)."""

    OK = "ok"
    CHANGED = "changed"  # files added, modified or deleted (listed), or the path changed kind
    DELETED = "deleted"  # the whole path is gone from the workspace, where it was (stat cache)
    NOT_PULLED = "not-pulled"  # not in the workspace and never was: never pulled here
    NOT_IN_CACHE = "not-in-cache"  # in the workspace, but its tree is not in the cache to compare with
    UNMERGED = "unmerged"  # a Git merge left conflicts in the metafile (listed in `conflicts`)


@dataclass(slots=True)
class TargetStatus:
    target: Target
    meta: metafile.Metafile | None  # None: unmerged with Git's conflict markers, unreadable
    state: State = State.OK
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # were in the workspace, are gone
    # Recorded files this workspace never had (no stat cache entry: a partial or killed pull, a
    # shared cache): not deleted and not a change; `add` keeps them, `fastreg pull TARGET` brings them.
    not_pulled: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # UNMERGED: one line per conflicting path
    in_cache: bool = True  # DELETED: whether the cache holds the version (else only a pull restores it)

    @property
    def changed(self) -> bool:
        return self.state != State.OK

    def to_json(self, moved: str | None = None) -> dict[str, object]:
        """`status --json`'s entry; moved: the commit an import's source branch is at now."""
        # Paths from the project's root, as in `diff --json` (one rule for every JSON output)
        def full(items: list[str]) -> list[str]:
            if self.meta is not None and self.meta.kind == "file":
                return [self.target.rel for _ in items]
            return [f"{self.target.rel}/{p}" for p in items]

        out: dict[str, object] = {"path": self.target.rel, "state": self.state.value, "added": full(self.added),
                                  "modified": full(self.modified), "deleted": full(self.deleted),
                                  "not_pulled": full(self.not_pulled)}
        if self.conflicts:
            out["conflicts"] = self.conflicts
        if self.meta is not None and self.meta.source is not None:
            src = self.meta.source
            out["import"] = {"url": src.url, "path": src.path, "rev": src.rev, "rev_lock": src.rev_lock,
                             "moved_to": moved}
        return out


def status(project: Project, paths: Iterable[str], jobs: int | None = None) -> list[TargetStatus]:
    out = []
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        for t in resolve_targets(project, paths):
            out.append(_status_one(project, t, pool))
    return out


def _status_one(project: Project, t: Target, pool: ThreadPoolExecutor) -> TargetStatus:
    try:
        meta = project.read_meta(t, unmerged_ok=True)
    except UnmergedError as exc:  # Git's conflict markers: nothing to compare with
        return TargetStatus(t, None, State.UNMERGED, conflicts=[exc.message.split("; ")[0]])
    res = TargetStatus(t, meta)
    if meta.conflicts:
        res.state = State.UNMERGED
        res.conflicts = list(meta.conflicts)
        return res
    if not os.path.lexists(t.data):
        res.state = State.DELETED if ever_here(project.state_dir, t.rel) else State.NOT_PULLED
        if res.state == State.DELETED:
            res.in_cache = (project.cache.has_file(meta.digest) if meta.kind == "file"
                            else project.cache.tree_path(meta.digest).exists())
        return res
    started = now_ns()
    if meta.kind == "file":
        sc = StatCache(project.state_dir, t.rel).load()  # one entry: a directory's is streamed
        try:
            st = os.stat(t.data)
        except FileNotFoundError:
            res.state = State.DELETED
            return res
        files: dict[str, os.stat_result | tuple[int, int, int, int]] = {t.name: st}
        if not stat.S_ISREG(st.st_mode):
            res.state = State.CHANGED
            res.modified.append(t.name)
            return res
        ws = workspace_digests(t.data.parent, files, sc, pool, started, len(meta.digest))
        if ws[t.name] != meta.digest:
            res.state = State.CHANGED
            res.modified.append(t.name)
        sc.save()
        return res
    if t.data.is_file():
        res.state = State.CHANGED
        res.modified.append(t.name)
        return res
    if not project.cache.tree_path(meta.digest).exists():
        res.state = State.NOT_IN_CACHE
        return res
    try:
        found = scan_target(t.data, meta, project.cache, StatCache(project.state_dir, t.rel), pool, started)
    except MissingDataError:  # a tree node below the root is not in the cache
        res.state = State.NOT_IN_CACHE
        return res
    res.added, res.modified, res.deleted, res.not_pulled = found.added, found.modified, found.deleted, found.not_pulled
    if res.added or res.modified or res.deleted:
        res.state = State.CHANGED
    return res


@dataclass(frozen=True, slots=True)
class Exposure:
    """Tracked data that Git would take: its .gitignore line is gone, or files of it are in
    Git's index (data moved by hand, a `git add -f`). Either way a commit could carry the bytes."""

    target: Target
    ignored: bool
    staged: int  # files of it in Git's index


def git_exposure(project: Project, targets: list[Target]) -> list[Exposure]:
    """Two git processes for all targets: `check-ignore --no-index --stdin` and `ls-files`."""
    from fastreg import git_cli as git

    if not targets or project.config.get("core", {}).get("no_scm"):
        return []
    rels = [t.rel for t in targets]
    p = git.run(["check-ignore", "--no-index", "--stdin", "-z"], cwd=project.root,
                data=b"".join(os.fsencode(r) + b"\0" for r in rels), check=False)
    if p.returncode not in (0, 1):  # 128: not a Git work tree, or git failed: nothing to say
        return []
    ignored = {os.fsdecode(x) for x in p.stdout.split(b"\0") if x}
    listed = git.run(["ls-files", "-z", "--", *(f":(literal){r}" for r in rels)], cwd=project.root, check=False)
    staged: dict[str, int] = {}
    for name in (os.fsdecode(x) for x in listed.stdout.split(b"\0") if x):
        for r in rels:
            if name == r or name.startswith(r + "/"):
                staged[r] = staged.get(r, 0) + 1
    return [Exposure(t, t.rel in ignored, staged.get(t.rel, 0)) for t in targets
            if t.rel not in ignored or staged.get(t.rel)]

"""`fastreg gc` of the local cache: keep what the workspace (or every commit) refers to, and in a
shared cache.dir what every project using it refers to."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

from fastreg.chunking import WHOLE_FILE_LIMIT
from fastreg.errors import (
    DecodeError,
    FastregError,
    GcRefusedError,
)
from fastreg.objects import metafile, tree
from fastreg.repo.project import Project


# -- gc ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GcResult:
    removed_files: int
    removed_trees: int
    removed_bytes: int
    kept: int
    other_projects: int = 0  # projects sharing the cache whose data was kept too
    kept_recent: int = 0  # objects of a shared cache too new to judge (another project may be adding them)
    unpushed: UnpushedKept | None = None  # kept: committed versions need them and no remote has them


#: Seconds gc waits for the default remote to say what it holds before it keeps every committed
#: version's objects instead.
ASK_BUDGET = 10.0

#: In a shared cache, objects changed less than this ago are left alone: another project's add
#: may have stored them and not yet written the metafile that refers to them.
SHARED_CACHE_GRACE = 3600


def referenced_metas(project: Project, all_commits: bool) -> list[metafile.Metafile]:
    metas = [project.read_meta(t) for t in project.metafiles()]
    if all_commits:
        metas += metafiles_in_history(project)
    return metas


def _sharing_projects(project: Project) -> list[Project]:
    """The other projects registered in project's shared cache that still use it; entries of
    projects that are gone (or moved to another cache) are pruned."""
    others = []
    for entry, root in project.cache.projects():
        if root == project.root:
            continue
        try:
            other = Project(root) if (root / ".fastreg").is_dir() else None
        except FastregError as exc:
            raise GcRefusedError(f"the shared cache {project.cache.root} is also used by {root}, whose config "
                               f"cannot be read ({exc.message}); gc stopped without deleting anything") from None
        if other is None or other.cache.root.resolve() != project.cache.root.resolve():
            entry.unlink(missing_ok=True)
            continue
        others.append(other)
    return others


@dataclass(frozen=True, slots=True)
class UnpushedKept:
    """Objects a local gc kept because committed versions need them and their remote lacks them."""

    files: int = 0
    trees: int = 0
    bytes: int = 0
    targets: tuple[str, ...] = ()  # the versions' paths, for the message
    why: str = ""  # "remote NAME lacks them", "no remote is configured", "remote NAME could not be asked ..."


def _add_objects(project: Project, metas: list[metafile.Metafile], keep_files: set[bytes],
                 keep_trees: set[bytes]) -> None:
    """Every object of metas that is in this cache, into the keep sets."""
    for meta in metas:
        if meta.kind == "file":
            keep_files.add(meta.digest)
            continue
        if not project.cache.tree_path(meta.digest).exists():
            continue  # not in this cache: nothing of it to protect or delete
        try:
            keep_trees.update(tree.walk_dirs(project.cache, meta.digest))
            keep_files.update(rec.digest for _, rec in tree.walk(project.cache, meta.digest))
        except DecodeError as exc:
            raise GcRefusedError(f"{meta.path}: {exc}; gc stopped without deleting anything") from None


def _unpushed(project: Project, kept: set[bytes]) -> tuple[set[bytes], set[bytes], list[str], str]:
    """The objects of the versions committed anywhere in project's history (outside `kept`, the
    digests of the metafiles kept anyway) that its default remote does not hold: (files, trees,
    target names, why). No remote configured, or one that cannot be asked: all of them."""
    from fastreg.objects.tree import FileRecord
    from fastreg.repo.remotes import default_name, open_session, pick
    from fastreg.transfer.push_plan import PushTarget

    if project.config.get("core", {}).get("no_scm"):
        return set(), set(), [], ""
    seen: set[bytes] = set()
    metas = []
    for m in metafiles_in_history(project):
        if m.source is None and m.digest not in kept and m.digest not in seen:  # imports live in their registry
            seen.add(m.digest)
            metas.append(m)
    if not metas:
        return set(), set(), [], ""
    name = default_name(project.config)
    why = "no remote is configured"
    if name is not None:
        targets = [PushTarget(m.path, m.kind, m.digest, m.size,
                              record=FileRecord(m.size, m.digest, b"", m.executable)
                              if m.kind == "file" and m.size <= WHOLE_FILE_LIMIT else None, files=m.files)
                   for m in metas]
        try:
            remote = pick(project.config, None)
            # gc asks, it does not insist: a remote that does not answer within ASK_BUDGET keeps
            # everything committed (the safe side) instead of holding gc for the remote's budget
            quick = dataclasses.replace(remote, options={**remote.options,
                                                         "retry_budget": min(remote.retry_budget, ASK_BUDGET)})
            session = open_session(quick, project.root, None, project.cache, project.state_dir)
            with session:
                found = session.unpushed(targets)
            return found.files, found.trees, found.targets, f"remote {remote.name!r} lacks them"
        except FastregError as exc:
            why = f"remote {name!r} could not be asked ({exc.message})"
    files: set[bytes] = set()
    trees: set[bytes] = set()
    _add_objects(project, metas, files, trees)
    names = [m.path for m in metas if (m.digest in files if m.kind == "file" else m.digest in trees)]
    return files, trees, names, why


def gc(project: Project, all_commits: bool = False, grace: float | None = None,
       drop_unpushed: bool = False) -> GcResult:
    """Delete cache objects no kept metafile refers to. A shared cache (cache.dir) keeps what
    any project registered in it refers to (with the same scope: workspace or all commits), and
    leaves objects changed less than `grace` seconds ago (default SHARED_CACHE_GRACE) alone.
    With the workspace scope, objects of versions committed in any branch or tag that the
    project's default remote lacks are kept too (this cache may hold their only copy), unless
    drop_unpushed."""
    metas = referenced_metas(project, all_commits)
    others = _sharing_projects(project) if project.shared_cache else []
    for other in others:
        try:
            metas += referenced_metas(other, all_commits)
        except FastregError as exc:
            raise GcRefusedError(f"{other.root} shares this cache and its metafiles cannot be read ({exc.message}); "
                               "gc stopped without deleting anything") from None
    keep_files: set[bytes] = set()
    keep_trees: set[bytes] = set()
    _add_objects(project, metas, keep_files, keep_trees)
    unpushed = UnpushedKept()
    if not all_commits and not drop_unpushed:
        kept_digests = {m.digest for m in metas}
        names: list[str] = []
        whys: list[str] = []
        files: set[bytes] = set()
        trees: set[bytes] = set()
        for p in (project, *others):
            f, t, n, why = _unpushed(p, kept_digests)
            files |= f - keep_files
            trees |= t - keep_trees
            names += n
            if n and why not in whys:
                whys.append(why)
        size = 0
        for digest in files:
            with contextlib.suppress(OSError):
                size += project.cache.file_path(digest).stat().st_size
        unpushed = UnpushedKept(len(files), len(trees), size, tuple(dict.fromkeys(names)), "; ".join(whys))
        keep_files |= files
        keep_trees |= trees
    import time

    recent_after = time.time() - (SHARED_CACHE_GRACE if grace is None else grace) if project.shared_cache else None
    removed_files = removed_trees = removed_bytes = kept_recent = 0
    project.cache.note_removal()  # stat caches written before no longer vouch for the cache
    for kind, keep in (("files", keep_files), ("trees", keep_trees)):
        for digest, path in project.cache.iter_objects(kind):
            if digest in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if recent_after is not None and st.st_ctime > recent_after:
                    kept_recent += 1
                    continue
                path.unlink()
                removed_bytes += st.st_size
                if kind == "files":
                    removed_files += 1
                else:
                    removed_trees += 1
    for leftover in project.cache.leftover_tmps():
        with contextlib.suppress(OSError):
            # in a shared cache a young temp file may be another project's write in progress
            if recent_after is None or os.stat(leftover).st_mtime < recent_after:
                os.unlink(leftover)
    return GcResult(removed_files, removed_trees, removed_bytes, len(keep_files) + len(keep_trees),
                    len(others), kept_recent, unpushed)


def metafiles_in_history(project: Project) -> list[metafile.Metafile]:
    """Every metafile version in any commit of any branch or tag (git CLI, no checkout)."""
    from fastreg.repo.history import committed_metafiles

    return [c.meta for c in committed_metafiles(project, ["--all"])]

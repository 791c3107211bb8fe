"""`fastreg gc` of the local cache: keep what the workspace (or every commit) refers to, and in a
shared cache.dir what every project using it refers to."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from fastreg.errors import (
    DecodeError,
    FastregError,
    GcRefusedError,
    MetafileError,
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


def gc(project: Project, all_commits: bool = False, grace: float | None = None) -> GcResult:
    """Delete cache objects no kept metafile refers to. A shared cache (cache.dir) keeps what
    any project registered in it refers to (with the same scope: workspace or all commits), and
    leaves objects changed less than `grace` seconds ago (default SHARED_CACHE_GRACE) alone."""
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
                    len(others), kept_recent)


def metafiles_in_history(project: Project) -> list[metafile.Metafile]:
    """Every metafile version in any commit of any branch or tag (git CLI, no checkout): one
    `git rev-list --all --objects` (each object once, with a path it has) and one
    `git cat-file --batch` of the blobs whose path ends in .fastreg."""
    from fastreg import git_cli as git

    out = git.run(["rev-list", "--all", "--objects"], cwd=project.root, what="listing the Git history").stdout
    blobs: dict[str, str] = {}  # metafile blob sha -> a path it appeared at
    suffix = metafile.METAFILE_SUFFIX.encode()
    for line in out.splitlines():
        object_id, _, path = line.partition(b" ")
        name = path.rpartition(b"/")[2]
        if name.endswith(suffix) and len(name) > len(suffix):
            blobs.setdefault(object_id.decode(), path.decode(errors="replace"))
    metas = []
    for (sha, where), data in zip(blobs.items(), git.cat_blobs(project.root, list(blobs)), strict=True):
        try:
            metas.append(metafile.loads(data.decode(errors="replace"), f"{where} at blob {sha[:10]}"))
        except MetafileError:
            continue  # a broken metafile in old history (or a folder named *.fastreg) protects nothing
    return metas

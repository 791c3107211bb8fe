"""`fastreg add`: track paths (the walk and hashing pipeline is build.Builder)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastreg.errors import (
    DecodeError,
    FastregError,
    PathError,
)
from fastreg.objects import metafile, tree
from fastreg.progress import Progress, phase
from fastreg.repo.build import Builder, now_ns
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache, StatCacheWriter, StatFile, split
from fastreg.repo.workspace import (
    default_jobs,
    read_meta_quiet,
)


# -- add -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddResult:
    target: Target
    meta: metafile.Metafile
    changed: bool
    new: bool = False  # the path was not tracked before
    skipped: tuple[tuple[str, str], ...] = ()  # (path, why) of entries not recorded (build.SYMLINK_POLICY)
    kept: int = 0  # recorded files never checked out here, kept in the new version (not deleted)


def add(project: Project, paths: Iterable[str], jobs: int | None = None,
        progress: Progress | None = None, force: bool = False, prune: bool = False) -> list[AddResult]:
    """Track paths. Without force, an imported path is refused (`update` follows its source;
    recording it as the project's own data would drop the import). A directory's recorded files
    that were never in this workspace (no stat cache entry: a partial pull, a killed pull, a
    shared cache) stay in the new version, as they are; only files that were here and are gone
    are recorded as deleted. With prune (or force), the workspace is recorded exactly."""
    targets = [project.target(p) for p in paths]
    for t in targets:
        if not os.path.lexists(t.data):
            raise PathError(f"{t.rel}: no such file or directory")
        previous = read_meta_quiet(project, t)
        if previous is not None and previous.source is not None and not force:
            raise PathError(f"{t.rel}: imported from {previous.source.url} ({previous.source.path}); "
                            f"`fastreg update {t.rel}{metafile.METAFILE_SUFFIX}` follows its source, and "
                            f"`fastreg add --force {t.rel}` makes it this project's own data (the import record "
                            "is dropped)")
        if t.data.is_symlink() and t.data.is_dir():
            raise PathError(f"{t.rel}: is a symlink to a directory; add the directory it points to")
        owner = project.tracked_ancestor(t)
        if owner is not None:
            raise PathError(
                f"{t.rel}: inside the tracked directory {owner.rel}; run `fastreg add {owner.rel}` instead"
            )
        if t.data.is_dir():
            inner = next((m for m in project.metafiles() if m.rel.startswith(t.rel + "/")), None)
            if inner is not None:
                raise PathError(
                    f"{t.rel}: contains the tracked path {inner.rel}; remove "
                    f"{inner.rel}{metafile.METAFILE_SUFFIX} first"
                )
    project.cache.ensure()
    results = []
    phase(progress, "scan + hash")
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        for t in targets:
            results.append(_add_one(project, t, pool, progress, force, prune or force))
    return results


def _keep_never_here(project: Project, old: metafile.Metafile, new: tree.DirRecord,
                     here: StatFile) -> tuple[tree.DirRecord, int]:
    """The new version of a directory with the old version's files that were never in this
    workspace put back (`here`: the stat cache as it was before this add), and how many."""
    if not project.cache.tree_path(old.digest).exists():
        # A clone that never pulled: the recorded version's tree comes from the remote (trees
        # only). Without it, recording the workspace would drop whatever was never here.
        from fastreg.repo.diff import ensure_trees

        try:
            ensure_trees(project, [old], None, None)
        except FastregError as exc:
            raise PathError(f"{old.path}: the version recorded in its metafile cannot be read ({exc.message}); "
                            "`fastreg fetch` brings it, or `fastreg add --prune` records the workspace as it is "
                            "(files never checked out here then count as deleted)") from None

    def keep_file(path: str) -> bool:
        folder, name = split(path)
        return name not in here.names(folder)

    if len(old.digest) != len(new.digest):
        # The old version is format 1 (XXH3), the new one format 2 (SHA-256): a file kept as it
        # was recorded would need its bytes to be named in format 2, and it was never here.
        try:
            never = [rel for rel, _ in tree.walk(project.cache, old.digest) if keep_file(rel)]
        except (DecodeError, FastregError):
            return new, 0
        if never:
            raise PathError(f"{old.path}: {len(never)} of the files of its recorded version (format 1) were never "
                            f"checked out here ({never[0]}, ...), and `add` records format 2 (SHA-256), which needs "
                            f"their bytes; `fastreg pull {old.path}` brings them, or `fastreg add --prune` records the "
                            "workspace as it is (those files then count as deleted)")
        return new, 0
    try:
        rec, kept = tree.graft(project.cache, new.digest, old.digest, keep_file, lambda p: not here.had_under(p))
    except (DecodeError, FastregError):
        return new, 0  # an old tree the cache lacks in part: nothing to compare with
    return (rec, kept) if rec is not None else (new, 0)


def build(project: Project, t: Target, jobs: int | None = None, progress: Progress | None = None,
          md5s: dict[str, bytes] | None = None) -> tree.Record:
    """The workspace at t hashed and stored in the cache exactly as `add --prune` records it (the
    stat cache updated too), without writing its metafile: for a caller that checks what was
    built before it records anything (migrate; md5s: see Builder)."""
    project.cache.ensure()
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        meta, _, _, _ = _build(project, t, pool, progress, prune=True, md5s=md5s)
    if meta.kind == "dir":
        return tree.DirRecord(meta.size, meta.digest, meta.files)
    return tree.FileRecord(meta.size, meta.digest, b"", meta.executable)


def _add_one(project: Project, t: Target, pool: ThreadPoolExecutor, progress: Progress | None,
             force: bool, prune: bool) -> AddResult:
    meta, previous, kept, skipped = _build(project, t, pool, progress, prune)
    changed = project.write_meta(t, meta)
    project.ignore(t)
    return AddResult(t, meta, changed, previous is None, skipped, kept)


def _build(project: Project, t: Target, pool: ThreadPoolExecutor, progress: Progress | None,
           prune: bool, md5s: dict[str, bytes] | None = None
           ) -> tuple[metafile.Metafile, metafile.Metafile | None, int, tuple[tuple[str, str], ...]]:
    started = now_ns()
    cache_file = StatCache(project.state_dir, t.rel)
    removals = project.cache.removals()  # before any object is looked at
    old = StatFile(cache_file.path)  # read while the new one is written: replaced at commit()
    writer = StatCacheWriter(cache_file, started, removals)
    builder = Builder(project.cache, old, writer, pool, progress, stored=old.removals == removals, md5s=md5s)
    previous = read_meta_quiet(project, t)
    kept = 0
    try:
        if t.data.is_dir():
            rec = builder.build_dir(str(t.data), "")
            if previous is not None and previous.kind == "dir" and not prune:
                rec, kept = _keep_never_here(project, previous, rec, old)
            meta = metafile.Metafile(t.name, "dir", rec.digest, rec.size, rec.files)
        else:
            frec = builder.build_file(str(t.data), t.name)
            meta = metafile.Metafile(t.name, "file", frec.digest, frec.size, 1, frec.executable)
        if builder.folders_read or not t.data.is_dir():
            builder.keep_clean()
            writer.commit()
        else:
            writer.abort()  # every folder matched its fingerprint: the old cache is exact
    except BaseException:
        writer.abort()
        raise
    finally:
        old.close()
    return meta, previous, kept, tuple(builder.skipped)

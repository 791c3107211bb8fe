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
from fastreg.objects import metafile as mf
from fastreg.objects import tree as tr
from fastreg.progress import Progress, phase
from fastreg.repo.build import Builder, now_ns
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache, StatCacheWriter, StatFile
from fastreg.repo.workspace import (
    default_jobs,
    read_meta_quiet,
)


# -- add -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddResult:
    target: Target
    meta: mf.Metafile
    changed: bool
    new: bool = False  # the path was not tracked before
    skipped: tuple[tuple[str, str], ...] = ()  # (path, why) of entries not recorded (build.SYMLINK_POLICY)


def add(project: Project, paths: Iterable[str], jobs: int | None = None,
        progress: Progress | None = None, force: bool = False) -> list[AddResult]:
    """Track paths. Without force, an imported path is refused (`update` follows its source;
    recording it as the project's own data would drop the import), and so is a directory whose
    metafile names files that are neither in the workspace nor in the cache (a partial pull:
    recording it would silently drop them)."""
    targets = [project.target(p) for p in paths]
    for t in targets:
        if not os.path.lexists(t.data):
            raise PathError(f"{t.rel}: no such file or directory")
        previous = read_meta_quiet(project, t)
        if previous is not None and previous.source is not None and not force:
            raise PathError(f"{t.rel}: imported from {previous.source.url} ({previous.source.path}); "
                            f"`fastreg update {t.rel}{mf.METAFILE_SUFFIX}` follows its source, and "
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
                    f"{t.rel}: contains the tracked path {inner.rel}; remove {inner.rel}{mf.METAFILE_SUFFIX} first"
                )
    project.cache.ensure()
    results = []
    phase(progress, "scan + hash")
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        for t in targets:
            results.append(_add_one(project, t, pool, progress, force))
    return results


def _never_pulled(project: Project, old: mf.Metafile, new_digest: bytes) -> tuple[int, str | None]:
    """How many files the old version of a directory has that its new version lacks and the
    cache never had (so they were never in this workspace), and the first of them."""
    if not project.cache.tree_path(old.digest).exists():
        return 0, None
    count, first = 0, None
    try:
        for path, before, after in tr.diff(project.cache, old.digest, new_digest):
            if after is None and before is not None and not project.cache.has_file(before.digest):
                count += 1
                first = first or path
    except (DecodeError, FastregError):
        return 0, None  # an old tree the cache lacks in part: nothing to compare with
    return count, first


def _add_one(project: Project, t: Target, pool: ThreadPoolExecutor, progress: Progress | None,
             force: bool) -> AddResult:
    started = now_ns()
    cache_file = StatCache(project.state_dir, t.rel)
    removals = project.cache.removals()  # before any object is looked at
    old = StatFile(cache_file.path)  # read while the new one is written: replaced at commit()
    writer = StatCacheWriter(cache_file, started, removals)
    builder = Builder(project.cache, old, writer, pool, progress, stored=old.removals == removals)
    try:
        if t.data.is_dir():
            rec = builder.build_dir(str(t.data), "")
            meta = mf.Metafile(t.name, "dir", rec.digest, rec.size, rec.files)
        else:
            frec = builder.build_file(str(t.data), t.name)
            meta = mf.Metafile(t.name, "file", frec.digest, frec.size, 1, frec.executable)
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
    previous = read_meta_quiet(project, t)
    if previous is not None and previous.kind == "dir" and meta.kind == "dir" and not force:
        missing, first = _never_pulled(project, previous, meta.digest)
        if missing:
            raise PathError(f"{t.rel}: {missing} recorded {'file is' if missing == 1 else 'files are'} neither in "
                            f"the workspace nor in the cache (first: {first}; a partial pull?); run "
                            f"`fastreg pull {t.rel}` first, or `fastreg add --force {t.rel}` to record them as "
                            "deleted")
    changed = project.write_meta(t, meta)
    project.ignore(t)
    return AddResult(t, meta, changed, previous is None, tuple(builder.skipped))

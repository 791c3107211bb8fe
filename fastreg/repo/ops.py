"""Producer operations on a project: add, status, checkout, gc (workspace and all commits)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastreg.chunking import default_chunker
from fastreg.errors import (
    ConflictError,
    DecodeError,
    FastregError,
    FileSystemError,
    GcRefusedError,
    MetafileError,
    PathError,
)
from fastreg.objects import metafile as mf
from fastreg.objects import tree as tr
from fastreg.progress import Progress, phase
from fastreg.repo.build import Builder, now_ns
from fastreg.repo.cache import is_workspace_tmp, workspace_tmp
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache, StatCacheWriter, settle


def default_jobs() -> int:
    return max(2, os.cpu_count() or 2)


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
        previous = _read_meta_quiet(project, t)
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
    old = StatCache(project.state_dir, t.rel).load()
    writer = StatCacheWriter(old, started)
    builder = Builder(project.cache, old, writer, pool, progress)
    try:
        if t.data.is_dir():
            rec = builder.build_dir(str(t.data), "")
            old.entries.clear()
            meta = mf.Metafile(t.name, "dir", rec.digest, rec.size, rec.files)
        else:
            frec = builder.build_file(str(t.data), t.name)
            meta = mf.Metafile(t.name, "file", frec.digest, frec.size, 1, frec.executable)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    previous = _read_meta_quiet(project, t)
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


def _read_meta_quiet(project: Project, t: Target) -> mf.Metafile | None:
    try:
        return project.read_meta(t)
    except FastregError:
        return None


# -- workspace state ---------------------------------------------------------------------------
def _walk_workspace(root: Path, leftovers: list[str] | None = None
                    ) -> dict[str, os.stat_result | tuple[int, int, int, int]]:
    """relpath -> (ino, size, mtime_ns, mode) of every regular file under root (links to files
    followed).  Directory entries come from getdents (d_type, no stat), then the native core
    stats all files in one GIL-free pass.  Temp files of an interrupted checkout are skipped
    (and listed in leftovers, for checkout to delete)."""
    rels: list[str] = []
    paths: list[str] = []

    def walk(d: str, prefix: str) -> None:
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path, prefix + entry.name + "/")
                    elif entry.is_file():
                        if is_workspace_tmp(entry.name):
                            if leftovers is not None:
                                leftovers.append(entry.path)
                            continue
                        rels.append(prefix + entry.name)
                        paths.append(entry.path)
        except OSError as exc:
            raise FileSystemError(f"cannot list {d}: {exc.strerror}") from None

    walk(str(root), "")
    try:
        stats = default_chunker().stat_files(paths)
    except OSError as exc:
        raise FileSystemError(f"cannot stat {exc.filename}: {exc.strerror}") from None
    return {rel: st for rel, st in zip(rels, stats, strict=True) if st is not None}


def _digests(root: Path, files: dict[str, os.stat_result | tuple[int, int, int, int]], sc: StatCache,
             pool: ThreadPoolExecutor,
             started: int) -> dict[str, bytes]:
    """Digest of every workspace file: from the stat cache when stat matches, else by hashing
    (in parallel batches); new hashes are recorded in the stat cache."""
    out: dict[str, bytes] = {}
    misses: list[str] = []
    for rel, st in files.items():
        hit = sc.lookup(rel, st)
        if hit is None:
            misses.append(rel)
        else:
            out[rel] = hit[0]
    if misses:
        chunker = default_chunker()
        batches = [misses[i : i + 64] for i in range(0, len(misses), 64)]

        def work(batch: list[str]) -> list[tuple[int, bytes, bytes, int, int, int]]:
            try:
                return chunker.hash_files([os.path.join(root, r) for r in batch])
            except OSError as exc:
                raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None

        for batch, results in zip(batches, pool.map(work, batches), strict=True):
            for rel, (_size, digest, chunks, *_) in zip(batch, results, strict=True):
                out[rel] = digest
                sc.record(rel, files[rel], digest, chunks, started)
    return out


def _tree_files(project: Project, meta: mf.Metafile) -> dict[str, tr.FileRecord]:
    if meta.kind == "file":
        return {meta.path: tr.FileRecord(meta.size, meta.digest, b"", meta.executable)}
    try:
        return dict(tr.walk(project.cache, meta.digest))
    except DecodeError as exc:
        raise MetafileError(f"{meta.path}: {exc}") from None


# -- status ------------------------------------------------------------------------------------
@dataclass(slots=True)
class TargetStatus:
    target: Target
    meta: mf.Metafile
    state: str = "ok"  # ok | changed | deleted | not-pulled (no data, not in cache) | not-in-cache
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # gone from the workspace, still in the cache
    # Recorded files that are neither in the workspace nor in the cache: never pulled here (a
    # partial pull), not deleted. Not a change: `fastreg pull TARGET` brings them.
    not_pulled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.state != "ok"


def under(path: str, subpath: str | None) -> bool:
    return subpath is None or path == subpath or path.startswith(subpath + "/")


def resolve_selection(project: Project, paths: Iterable[str]) -> list[tuple[Target, str | None]]:
    """Targets by data path or metafile, or (target, subpath) for paths inside a tracked
    directory; every target in the workspace when paths is empty."""
    paths = list(paths)
    if not paths:
        return [(t, None) for t in project.metafiles()]
    out: list[tuple[Target, str | None]] = []
    for p in paths:
        t = project.target(p)
        if t.meta.exists():
            out.append((t, None))
            continue
        owner = project.tracked_ancestor(t)
        if owner is None:
            raise PathError(f"{p}: not tracked (no metafile for it or a folder above it); run `fastreg add` first")
        out.append((owner, t.rel[len(owner.rel) + 1 :]))
    return out


def resolve_targets(project: Project, paths: Iterable[str]) -> list[Target]:
    paths = list(paths)
    if not paths:
        return project.metafiles()
    return [project.target(p, must_exist=True) for p in paths]


def status(project: Project, paths: Iterable[str], jobs: int | None = None) -> list[TargetStatus]:
    out = []
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        for t in resolve_targets(project, paths):
            out.append(_status_one(project, t, pool))
    return out


def workspace_records(project: Project, t: Target, meta: mf.Metafile,
                      pool: ThreadPoolExecutor) -> dict[str, tr.FileRecord] | None:
    """What t's data in the workspace is, as {path relative to t (a file target: its name):
    record without chunks}, through the stat cache as status reads it. Files the metafile names
    that were never pulled here (neither in the workspace nor in the cache) count as they are
    recorded. None when none of t's data was ever here: the metafile says what it is."""
    if not os.path.lexists(t.data):
        in_cache = (project.cache.has_file(meta.digest) if meta.kind == "file"
                    else project.cache.tree_path(meta.digest).exists())
        return {} if in_cache else None
    started = now_ns()
    sc = StatCache(project.state_dir, t.rel).load()
    if t.data.is_dir():
        files = _walk_workspace(t.data)
        digests = _digests(t.data, files, sc, pool, started)
    else:
        files = {t.name: os.stat(t.data)}
        digests = _digests(t.data.parent, files, sc, pool, started)
    sc.save()
    out = {rel: tr.FileRecord(_stat_size(files[rel]), d, b"", _is_exec(files[rel])) for rel, d in digests.items()}
    if meta.kind == "dir" and t.data.is_dir() and project.cache.tree_path(meta.digest).exists():
        for rel, rec in _walk_tree(project, meta):
            if rel not in out and not project.cache.has_file(rec.digest):
                out[rel] = rec
    return out


def _stat_size(st: os.stat_result | tuple[int, int, int, int]) -> int:
    return st.st_size if isinstance(st, os.stat_result) else st[1]


def _is_exec(st: os.stat_result | tuple[int, int, int, int]) -> bool:
    mode = st.st_mode if isinstance(st, os.stat_result) else st[3]
    return bool(mode & 0o100)


def _status_one(project: Project, t: Target, pool: ThreadPoolExecutor) -> TargetStatus:
    meta = project.read_meta(t)
    res = TargetStatus(t, meta)
    if not os.path.lexists(t.data):
        in_cache = (project.cache.has_file(meta.digest) if meta.kind == "file"
                    else project.cache.tree_path(meta.digest).exists())
        res.state = "deleted" if in_cache else "not-pulled"
        return res
    started = now_ns()
    sc = StatCache(project.state_dir, t.rel).load()
    if meta.kind == "file":
        try:
            st = os.stat(t.data)
        except FileNotFoundError:
            res.state = "deleted"
            return res
        files: dict[str, os.stat_result | tuple[int, int, int, int]] = {t.name: st}
        if not stat.S_ISREG(st.st_mode):
            res.state = "changed"
            res.modified.append(t.name)
            return res
        ws = _digests(t.data.parent, files, sc, pool, started)
        if ws[t.name] != meta.digest:
            res.state = "changed"
            res.modified.append(t.name)
        sc.save()
        return res
    if t.data.is_file():
        res.state = "changed"
        res.modified.append(t.name)
        return res
    try:
        expected = _tree_files(project, meta)
    except FastregError:
        res.state = "not-in-cache"
        return res
    ws = _digests(t.data, _walk_workspace(t.data), sc, pool, started)
    for rel, digest in ws.items():
        rec = expected.get(rel)
        if rec is None:
            res.added.append(rel)
        elif rec.digest != digest:
            res.modified.append(rel)
    for rel, rec in expected.items():
        if rel not in ws:
            (res.deleted if project.cache.has_file(rec.digest) else res.not_pulled).append(rel)
    res.added.sort()
    res.modified.sort()
    if res.added or res.modified or res.deleted:
        res.state = "changed"
    sc.save()
    return res


# -- checkout ----------------------------------------------------------------------------------
@dataclass(slots=True)
class CheckoutResult:
    placed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)


def checkout(project: Project, paths: Iterable[str], force: bool = False, jobs: int | None = None,
             progress: Progress | None = None) -> CheckoutResult:
    result = CheckoutResult()
    selection = resolve_selection(project, paths)
    # A tracked directory that is not in the workspace at all (a fresh clone, an import) has
    # nothing to compare with and nothing to lose: it is streamed from its tree straight into
    # place, holding no per-file state. The others are planned first, so that a conflict stops
    # the command before anything changes.
    fresh: list[tuple[Target, mf.Metafile, str | None]] = []
    planned: list[tuple[Target, str | None]] = []
    for t, sub in selection:
        meta = project.read_meta(t)
        if meta.kind == "dir" and not os.path.lexists(t.data):
            if sub is not None and not any(True for rel, _ in _walk_tree(project, meta) if under(rel, sub)):
                raise PathError(f"{t.rel}/{sub}: not in the tracked directory {t.rel}")
            fresh.append((t, meta, sub))
        else:
            planned.append((t, sub))
    workers = jobs or default_jobs()
    with ThreadPoolExecutor(workers, thread_name_prefix="fastreg-place") as pool:
        plans = [_plan_checkout(project, t, pool, force, sub) for t, sub in planned]
        conflicts = [c for p in plans for c in p.conflicts]
        if conflicts and not force:
            more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
            raise ConflictError(
                f"{conflicts[0]}{more}: local changes that are not in the cache would be lost; "
                "run `fastreg add` to keep them or `fastreg checkout --force` to discard them"
            )
        errors: list[FastregError] = []
        total = sum(rec.size for p in plans for _, rec in p.place)
        total += sum(meta.size if sub is None else
                     sum(r.size for rel, r in _walk_tree(project, meta) if under(rel, sub)) for _, meta, sub in fresh)
        phase(progress, "checkout", total)
        for plan in plans:
            _apply_checkout(project, plan, pool, result, errors, progress)
        for t, meta, sub in fresh:
            _checkout_fresh(project, t, meta, sub, pool, workers, result, errors, progress)
    _raise_first(errors)
    return result


def checkout_new(project: Project, t: Target, meta: mf.Metafile, jobs: int | None = None) -> CheckoutResult:
    """Check out the directory `meta` describes at t, which does not exist yet, without reading
    t's metafile (import writes that only once the data is complete)."""
    result = CheckoutResult()
    errors: list[FastregError] = []
    workers = jobs or default_jobs()
    with ThreadPoolExecutor(workers, thread_name_prefix="fastreg-place") as pool:
        _checkout_fresh(project, t, meta, None, pool, workers, result, errors, None)
    _raise_first(errors)
    return result


def _raise_first(errors: list[FastregError]) -> None:
    if errors:
        first = errors[0]
        if len(errors) > 1:
            raise type(first)(f"{first.message} (and {len(errors) - 1} more files failed)")
        raise first


@dataclass(slots=True)
class _CheckoutPlan:
    target: Target
    meta: mf.Metafile
    place: list[tuple[str, tr.FileRecord]]
    remove: list[str]
    conflicts: list[str]
    unchanged: int
    statcache: StatCache
    started: int


def _plan_checkout(project: Project, t: Target, pool: ThreadPoolExecutor, force: bool,
                   subpath: str | None = None) -> _CheckoutPlan:
    meta = project.read_meta(t)
    started = now_ns()
    sc = StatCache(project.state_dir, t.rel).load()
    expected = _tree_files(project, meta)
    if subpath is not None:
        expected = {rel: rec for rel, rec in expected.items() if under(rel, subpath)}
        if not expected:
            raise PathError(f"{t.rel}/{subpath}: not in the tracked directory {t.rel}")
    base = t.data if meta.kind == "dir" else t.data.parent
    if meta.kind == "dir":
        if t.data.exists() and not t.data.is_dir():
            files: dict[str, os.stat_result | tuple[int, int, int, int]] = {}
            plan_remove_self = [""]
        else:
            leftovers: list[str] = []
            files = _walk_workspace(t.data, leftovers) if t.data.is_dir() else {}
            if subpath is not None:
                files = {rel: st for rel, st in files.items() if under(rel, subpath)}
            for path in leftovers:  # temp files of an interrupted checkout
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            plan_remove_self = []
    else:
        plan_remove_self = []
        files = {}
        if t.data.is_dir():
            plan_remove_self = [""]
        elif os.path.exists(t.data):
            files = {t.name: os.stat(t.data)}
    ws = _digests(base, files, sc, pool, started)
    place, remove, conflicts = [], [], []
    unchanged = 0
    for rel, rec in expected.items():
        have = ws.get(rel)
        if have == rec.digest:
            unchanged += 1
            continue
        if have is not None and not project.cache.has_file(have):
            conflicts.append(f"{t.rel}/{rel}" if meta.kind == "dir" else t.rel)
        place.append((rel, rec))
    for rel, digest in ws.items():
        if rel not in expected:
            remove.append(rel)
            if not project.cache.has_file(digest):
                conflicts.append(f"{t.rel}/{rel}")
    if plan_remove_self:
        conflicts.append(t.rel)
        remove = plan_remove_self
    return _CheckoutPlan(t, meta, place, remove, conflicts, unchanged, sc, started)


def _apply_checkout(project: Project, plan: _CheckoutPlan, pool: ThreadPoolExecutor, result: CheckoutResult,
                    errors: list[FastregError], progress: Progress | None) -> None:
    t, meta = plan.target, plan.meta
    base = t.data if meta.kind == "dir" else t.data.parent
    if plan.remove == [""]:
        _remove_path(t.data)
        plan.remove = []
    for rel in plan.remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base / rel)
        result.removed += 1
    if plan.remove:
        _prune_empty_dirs(base, {os.path.dirname(r) for r in plan.remove})
    if meta.kind == "dir":
        t.data.mkdir(parents=True, exist_ok=True)
        for d in sorted({os.path.dirname(rel) for rel, _ in plan.place} - {""}):
            (t.data / d).mkdir(parents=True, exist_ok=True)

    place_batch = _placer(project, base)
    batches = [plan.place[i : i + PLACE_BATCH] for i in range(0, len(plan.place), PLACE_BATCH)]
    for done in pool.map(place_batch, batches):
        _tally(done, result, errors, progress,
               lambda rel, st, rec, settled: plan.statcache.record(rel, st, rec.digest, rec.chunks,
                                                                   plan.started, settled))
    result.unchanged += plan.unchanged
    plan.statcache.save()


PLACE_BATCH = 64
#: Batches in flight per worker when streaming a fresh check-out: enough that the workers never
#: wait for the tree walk (a window of 4 leaves them idle 40% of the time), few enough that
#: memory stays a few MB.
FRESH_WINDOW = 64
StatKey = tuple[int, int, int]  # ino, size, mtime_ns
#: (relative path, record, error, stat key of the placed file, settled: recordable at once)
Placed = tuple[str, tr.FileRecord, FastregError | None, StatKey | None, bool]


def _placer(project: Project, base: Path) -> Callable[[list[tuple[str, tr.FileRecord]]], list[Placed]]:
    """A function that puts a batch of (relative path, record) under `base` from the cache
    (runs in the pool's threads) and says how each went."""
    def place_one(rel: str, rec: tr.FileRecord) -> Placed:
        try:
            settled: list[StatKey] = []  # a copy or reflink is settled before its rename
            project.cache.place(rec.digest, base / rel, rec.executable, settled=settled)
            if settled:
                return rel, rec, None, settled[-1], True
            st = os.stat(base / rel)
            return rel, rec, None, (st.st_ino, st.st_size, st.st_mtime_ns), False
        except FastregError as exc:
            return rel, rec, exc, None, False

    def place_batch(batch: list[tuple[str, tr.FileRecord]]) -> list[Placed]:
        """Copy mode: the native core reads each cache object, verifies its digest and writes
        the workspace copy in one GIL-free pass; anything unusual goes through place_one."""
        project.cache.wait_for([rec.digest for _, rec in batch])  # a pull may still be downloading them
        if not project.cache.copies():
            return [place_one(rel, rec) for rel, rec in batch]
        tmps = [workspace_tmp(base / rel) for rel, _ in batch]
        try:
            errs = project.cache.copy_verified(
                [(t, rec.digest, rec.executable) for t, (_, rec) in zip(tmps, batch, strict=True)],
                names=[base / rel for rel, _ in batch])
        except OSError:
            for t in tmps:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(t)
            return [place_one(rel, rec) for rel, rec in batch]
        out: list[Placed] = []
        for (rel, rec), tmp, err in zip(batch, tmps, errs, strict=True):
            if err is not None:
                out.append((rel, rec, err, None, False))
                continue
            key = settle(tmp)
            os.replace(tmp, base / rel)
            if key is None:
                st = os.stat(base / rel)
                out.append((rel, rec, None, (st.st_ino, st.st_size, st.st_mtime_ns), False))
            else:
                out.append((rel, rec, None, key, True))
        return out

    return place_batch


def _tally(done: list[Placed], result: CheckoutResult, errors: list[FastregError], progress: Progress | None,
           remember: Callable[[str, StatKey, tr.FileRecord, bool], None]) -> None:
    """Count a placed batch into the result and the progress; `remember` records each placed
    file's stat key for the stat cache."""
    for rel, rec, err, st, settled in done:
        if err is not None:
            errors.append(err)
            result.failed.append(rel)
            continue
        result.placed += 1
        if st is not None:
            remember(rel, st, rec, settled)
        if progress:
            progress(1, rec.size)


def _walk_tree(project: Project, meta: mf.Metafile) -> Iterator[tuple[str, tr.FileRecord]]:
    try:
        yield from tr.walk(project.cache, meta.digest)
    except DecodeError as exc:
        raise MetafileError(f"{meta.path}: {exc}") from None


def _checkout_fresh(project: Project, t: Target, meta: mf.Metafile, subpath: str | None, pool: ThreadPoolExecutor,
                    workers: int, result: CheckoutResult, errors: list[FastregError],
                    progress: Progress | None) -> None:
    """Check out a tracked directory that is absent from the workspace: stream its tree in
    batches through the pool (a bounded number in flight), writing a fresh stat cache as it goes.
    Memory: the batches in flight and the set of directories made, not the files."""
    started = now_ns()
    writer = StatCacheWriter(StatCache(project.state_dir, t.rel), started)
    base = t.data
    base.mkdir(parents=True, exist_ok=True)
    place_batch = _placer(project, base)
    made = {""}
    window: deque[Future[list[Placed]]] = deque()

    def drain(fut: Future[list[Placed]]) -> None:
        _tally(fut.result(), result, errors, progress,
               lambda rel, st, rec, settled: writer.append(rel, st, rec.digest, rec.chunks, settled))

    try:
        batch: list[tuple[str, tr.FileRecord]] = []
        for rel, rec in _walk_tree(project, meta):
            if subpath is not None and not under(rel, subpath):
                continue
            d = os.path.dirname(rel)
            if d not in made:
                (base / d).mkdir(parents=True, exist_ok=True)
                made.add(d)
            batch.append((rel, rec))
            if len(batch) == PLACE_BATCH:
                window.append(pool.submit(place_batch, batch))
                batch = []
                if len(window) >= FRESH_WINDOW * workers:
                    drain(window.popleft())
        if batch:
            window.append(pool.submit(place_batch, batch))
        while window:
            drain(window.popleft())
    except BaseException:
        for fut in window:
            fut.cancel()
        writer.abort()
        raise
    writer.commit()


def _remove_path(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        for root, dirs, files in os.walk(p, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                dd = os.path.join(root, d)
                if os.path.islink(dd):
                    os.unlink(dd)
                else:
                    os.rmdir(dd)
        os.rmdir(p)
    else:
        os.unlink(p)


def _prune_empty_dirs(base: Path, dirs: set[str]) -> None:
    for d in sorted(dirs, key=lambda x: -x.count("/")):
        while d:
            try:
                os.rmdir(base / d)
            except OSError:
                break
            d = os.path.dirname(d)


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


def referenced_metas(project: Project, all_commits: bool) -> list[mf.Metafile]:
    metas = [project.read_meta(t) for t in project.metafiles()]
    if all_commits:
        metas += _metafiles_in_history(project)
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
            keep_trees.update(tr.walk_dirs(project.cache, meta.digest))
            keep_files.update(rec.digest for _, rec in tr.walk(project.cache, meta.digest))
        except DecodeError as exc:
            raise GcRefusedError(f"{meta.path}: {exc}; gc stopped without deleting anything") from None
    import time

    recent_after = time.time() - (SHARED_CACHE_GRACE if grace is None else grace) if project.shared_cache else None
    removed_files = removed_trees = removed_bytes = kept_recent = 0
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


def _metafiles_in_history(project: Project) -> list[mf.Metafile]:
    """Every metafile version in any commit of any branch or tag (git CLI, no checkout): one
    `git rev-list --all --objects` (each object once, with a path it has) and one
    `git cat-file --batch` of the blobs whose path ends in .fastreg."""
    from fastreg import git

    out = git.run(["rev-list", "--all", "--objects"], cwd=project.root, what="listing the Git history").stdout
    blobs: dict[str, str] = {}  # metafile blob sha -> a path it appeared at
    suffix = mf.METAFILE_SUFFIX.encode()
    for line in out.splitlines():
        object_id, _, path = line.partition(b" ")
        name = path.rpartition(b"/")[2]
        if name.endswith(suffix) and len(name) > len(suffix):
            blobs.setdefault(object_id.decode(), path.decode(errors="replace"))
    metas = []
    for (sha, where), data in zip(blobs.items(), git.cat_blobs(project.root, list(blobs)), strict=True):
        try:
            metas.append(mf.loads(data.decode(errors="replace"), f"{where} at blob {sha[:10]}"))
        except MetafileError:
            continue  # a broken metafile in old history (or a folder named *.fastreg) protects nothing
    return metas

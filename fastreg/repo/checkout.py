"""`fastreg checkout` (and the check-out half of pull, import, update): make the workspace
match the metafiles from the cache without losing a byte that exists nowhere else."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastreg.errors import (
    ConflictError,
    DecodeError,
    FastregError,
    MetafileError,
    PathError,
)
from fastreg.objects import metafile, tree
from fastreg.progress import Progress, phase
from fastreg.repo.arrivals import Arrivals
from fastreg.repo.build import now_ns
from fastreg.repo.cache import workspace_tmp
from fastreg.repo.project import Project, Target
from fastreg.repo.scan import AHEAD, Listing, listed_files, listing, scan_target
from fastreg.repo.statcache import StatCache, StatCacheWriter, canonical, fingerprint, settle
from fastreg.repo.workspace import (
    Selected,
    default_jobs,
    has_subpath,
    select,
    tree_files,
    under,
    walk_tree,
    walk_workspace,
    workspace_digests,
)


# -- checkout ----------------------------------------------------------------------------------
@dataclass(slots=True)
class CheckoutResult:
    placed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    """One check-out's state, shared by its steps: where it places files, the pool that writes
    them, what it found so far, and the download it may be running alongside."""

    project: Project
    pool: ThreadPoolExecutor
    workers: int
    progress: Progress | None
    arrivals: Arrivals | None  # a download filling the cache meanwhile (pull, import), or None
    result: CheckoutResult = field(default_factory=CheckoutResult)
    errors: list[FastregError] = field(default_factory=list)


def checkout(project: Project, paths: Iterable[str], force: bool = False, jobs: int | None = None,
             progress: Progress | None = None, arrivals: Arrivals | None = None,
             selected: list[Selected] | None = None) -> CheckoutResult:
    """Make the selected tracked paths match their metafiles. arrivals: a download is still
    filling the cache; each file waits for its object (pull checks out while it downloads).
    selected: the selection of `paths`, already read (pull's fetch read it)."""
    if selected is None:
        selected = select(project, paths)
    # A tracked directory that is not in the workspace at all (a fresh clone, an import) has
    # nothing to compare with and nothing to lose: it is streamed from its tree straight into
    # place, holding no per-file state. The others are planned first, so that a conflict stops
    # the command before anything changes.
    fresh: list[tuple[Target, metafile.Metafile, str | None]] = []
    planned: list[tuple[Target, metafile.Metafile, str | None]] = []
    for t, meta, sub in ((s.target, s.meta, s.subpath) for s in selected):
        if meta.kind == "dir" and not os.path.lexists(t.data):
            if not has_subpath(project, meta, sub):
                raise PathError(f"{t.rel}/{sub}: not in the tracked directory {t.rel}")
            fresh.append((t, meta, sub))
        else:
            planned.append((t, meta, sub))
    workers = jobs or default_jobs()
    with ThreadPoolExecutor(workers, thread_name_prefix="fastreg-place") as pool:
        run = _Run(project, pool, workers, progress, arrivals)
        plans = [_plan_checkout(project, t, meta, pool, force, sub) for t, meta, sub in planned]
        conflicts = [c for p in plans for c in p.conflicts]
        if conflicts and not force:
            more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
            raise ConflictError(
                f"{conflicts[0]}{more}: local changes that are not in the cache would be lost; "
                "run `fastreg add` to keep them or `fastreg checkout --force` to discard them"
            )
        total = sum(rec.size for p in plans for _, rec in p.place)
        total += sum(meta.size if sub is None else
                     sum(r.size for rel, r in walk_tree(project, meta) if under(rel, sub)) for _, meta, sub in fresh)
        phase(progress, "checkout", total)
        for plan in plans:
            _apply_checkout(run, plan)
        for t, meta, sub in fresh:
            _checkout_fresh(run, t, meta, sub)
    _raise_first(run.errors)
    return run.result


def unsaved_changes(project: Project, t: Target, meta: metafile.Metafile, jobs: int | None = None) -> list[str]:
    """The workspace files under t that deleting its data would lose: by checkout's rule (changed
    or added, content not in the cache). When the version's tree is not in the cache, every file
    whose content the cache lacks."""
    if not os.path.lexists(t.data):
        return []
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-scan") as pool:
        if meta.kind == "file" or project.cache.tree_path(meta.digest).exists():
            return _plan_checkout(project, t, meta, pool, force=False).conflicts
        files: dict[str, os.stat_result | tuple[int, int, int, int]] = (
            walk_workspace(t.data) if t.data.is_dir() else {t.name: os.stat(t.data)})
        base = t.data if t.data.is_dir() else t.data.parent
        ws = workspace_digests(base, files, StatCache(project.state_dir, t.rel).load(), pool, now_ns(),
                               len(meta.digest))
    prefix = f"{t.rel}/" if t.data.is_dir() else ""
    return sorted(f"{prefix}{rel}" if prefix else t.rel for rel, d in ws.items() if not project.cache.has_file(d))


def checkout_new(project: Project, t: Target, meta: metafile.Metafile, jobs: int | None = None,
                 arrivals: Arrivals | None = None) -> CheckoutResult:
    """Check out the directory `meta` describes at t, which does not exist yet, without reading
    t's metafile (import writes that only once the data is complete)."""
    workers = jobs or default_jobs()
    with ThreadPoolExecutor(workers, thread_name_prefix="fastreg-place") as pool:
        run = _Run(project, pool, workers, None, arrivals)
        _checkout_fresh(run, t, meta, None)
    _raise_first(run.errors)
    return run.result


def _raise_first(errors: list[FastregError]) -> None:
    if errors:
        first = errors[0]
        if len(errors) > 1:
            raise type(first)(f"{first.message} (and {len(errors) - 1} more files failed)")
        raise first


@dataclass(slots=True)
class _CheckoutPlan:
    target: Target
    meta: metafile.Metafile
    place: list[tuple[str, tree.FileRecord]]
    remove: list[str]  # files under the target to delete
    replace_self: bool  # the target's path holds the wrong kind (a file for a dir, or the reverse)
    conflicts: list[str]
    unchanged: int
    statcache: StatCache
    started: int
    folders: list[str] = field(default_factory=list)  # empty folders of the tree the workspace lacks


def _plan_checkout(project: Project, t: Target, meta: metafile.Metafile, pool: ThreadPoolExecutor, force: bool,
                   subpath: str | None = None) -> _CheckoutPlan:
    started = now_ns()
    if meta.kind == "dir" and t.data.is_dir() and not t.data.is_symlink():
        return _plan_dir(project, t, meta, pool, subpath, started)
    sc = StatCache(project.state_dir, t.rel).load()
    expected = tree_files(project, meta)
    if subpath is not None:
        expected = {rel: rec for rel, rec in expected.items() if under(rel, subpath)}
        if not expected:
            raise PathError(f"{t.rel}/{subpath}: not in the tracked directory {t.rel}")
    base = t.data if meta.kind == "dir" else t.data.parent
    if meta.kind == "dir":
        if t.data.exists() and not t.data.is_dir():
            files: dict[str, os.stat_result | tuple[int, int, int, int]] = {}
            replace_self = True
        else:
            leftovers: list[str] = []
            files = walk_workspace(t.data, leftovers) if t.data.is_dir() else {}
            if subpath is not None:
                files = {rel: st for rel, st in files.items() if under(rel, subpath)}
            for path in leftovers:  # temp files of an interrupted checkout
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            replace_self = False
    else:
        replace_self = False
        files = {}
        if t.data.is_dir():
            replace_self = True
        elif os.path.exists(t.data):
            files = {t.name: os.stat(t.data)}
    ws = workspace_digests(base, files, sc, pool, started, len(meta.digest))
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
    if replace_self:
        conflicts.append(t.rel)
        remove = []
    return _CheckoutPlan(t, meta, place, remove, replace_self, conflicts, unchanged, sc, started)


def _plan_dir(project: Project, t: Target, meta: metafile.Metafile, pool: ThreadPoolExecutor, subpath: str | None,
              started: int) -> _CheckoutPlan:
    """The plan for a tracked directory that is in the workspace, from status's folder-by-folder
    comparison (repo/scan.py): memory follows the changes and the largest folder, not the
    dataset, and folders whose fingerprint matches are not read at all."""
    total = meta.files
    if subpath is not None:
        try:
            found = tree.lookup(project.cache, meta.digest, subpath)
        except DecodeError as exc:
            raise MetafileError(f"{meta.path}: {exc}") from None
        if found is None:
            raise PathError(f"{t.rel}/{subpath}: not in the tracked directory {t.rel}")
        total = found.files if isinstance(found, tree.DirRecord) else 1
    ch = scan_target(t.data, meta, project.cache, StatCache(project.state_dir, t.rel), pool, started)
    for path in ch.leftovers:  # temp files of an interrupted checkout
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    place: list[tuple[str, tree.FileRecord]] = []
    remove: list[str] = []
    conflicts: list[str] = []
    for rel in ch.modified:
        if under(rel, subpath):
            if not project.cache.has_file(ch.digests[rel]):
                conflicts.append(f"{t.rel}/{rel}")
            place.append((rel, ch.records[rel]))
    place += [(rel, ch.records[rel]) for rel in ch.deleted + ch.not_pulled if under(rel, subpath)]
    for rel in ch.added:
        if under(rel, subpath):
            remove.append(rel)
            if not project.cache.has_file(ch.digests[rel]):
                conflicts.append(f"{t.rel}/{rel}")
    place.sort(key=lambda p: canonical(p[0]))
    return _CheckoutPlan(t, meta, place, remove, False, conflicts, total - len(place),
                         StatCache(project.state_dir, t.rel), started,
                         [d for d in ch.empty_folders if under(d, subpath)])


def _apply_checkout(run: _Run, plan: _CheckoutPlan) -> None:
    t, meta, result = plan.target, plan.meta, run.result
    base = t.data if meta.kind == "dir" else t.data.parent
    if plan.replace_self:
        _remove_path(t.data)
    for rel in plan.remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base / rel)
        plan.statcache.forget(rel)  # the version lacks it: not a file the user deleted here
        result.removed += 1
    if plan.remove:
        _prune_empty_dirs(base, {os.path.dirname(r) for r in plan.remove})
    if meta.kind == "dir":
        t.data.mkdir(parents=True, exist_ok=True)
        for d in sorted({os.path.dirname(rel) for rel, _ in plan.place} - {""} | set(plan.folders)):
            (t.data / d).mkdir(parents=True, exist_ok=True)

    place_batch = _placer(run, base)
    batches = [plan.place[i : i + PLACE_BATCH] for i in range(0, len(plan.place), PLACE_BATCH)]
    for done in run.pool.map(place_batch, batches):
        _tally(run, done,
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
Placed = tuple[str, tree.FileRecord, FastregError | None, StatKey | None, bool]


def _placer(run: _Run, base: Path) -> Callable[[list[tuple[str, tree.FileRecord]]], list[Placed]]:
    """A function that puts a batch of (relative path, record) under `base` from the cache
    (runs in the pool's threads) and says how each went."""
    project = run.project
    def place_one(rel: str, rec: tree.FileRecord) -> Placed:
        try:
            settled: list[StatKey] = []  # a copy or reflink is settled before its rename
            project.cache.place(rec.digest, base / rel, rec.executable, settled=settled)
            if settled:
                return rel, rec, None, settled[-1], True
            st = os.stat(base / rel)
            return rel, rec, None, (st.st_ino, st.st_size, st.st_mtime_ns), False
        except FastregError as exc:
            return rel, rec, exc, None, False

    def place_batch(batch: list[tuple[str, tree.FileRecord]]) -> list[Placed]:
        """Copy mode: the native core reads each cache object, verifies its digest and writes
        the workspace copy in one GIL-free pass; anything unusual goes through place_one."""
        if run.arrivals is not None:  # a pull may still be downloading them
            run.arrivals.wait_for([rec.digest for _, rec in batch])
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


def _tally(run: _Run, done: list[Placed], remember: Callable[[str, StatKey, tree.FileRecord, bool], None]) -> None:
    """Count a placed batch into the result and the progress; `remember` records each placed
    file's stat key for the stat cache."""
    for rel, rec, err, st, settled in done:
        if err is not None:
            run.errors.append(err)
            run.result.failed.append(rel)
            continue
        run.result.placed += 1
        if st is not None:
            remember(rel, st, rec, settled)
        if run.progress:
            run.progress(1, rec.size)


def _checkout_fresh(run: _Run, t: Target, meta: metafile.Metafile, subpath: str | None) -> None:
    """Check out a tracked directory that is absent from the workspace: stream its tree in
    batches through the pool (a bounded number in flight), writing a fresh stat cache as it goes.
    Memory: the batches in flight and the set of directories made, not the files."""
    project = run.project
    started = now_ns()
    writer = StatCacheWriter(StatCache(project.state_dir, t.rel), started)
    base = t.data
    base.mkdir(parents=True, exist_ok=True)
    place_batch = _placer(run, base)
    made = {""}
    window: deque[Future[list[Placed]]] = deque()

    def drain(fut: Future[list[Placed]]) -> None:
        _tally(run, fut.result(),
               lambda rel, st, rec, settled: writer.append(rel, st, rec.digest, rec.chunks, settled))

    try:
        batch: list[tuple[str, tree.FileRecord]] = []

        def make_empty(rel: str) -> None:  # a folder of the tree with no file in it
            if under(rel, subpath):
                (base / rel).mkdir(parents=True, exist_ok=True)

        for rel, rec in walk_tree(project, meta, make_empty):
            if subpath is not None and not under(rel, subpath):
                continue
            d = os.path.dirname(rel)
            if d not in made:
                (base / d).mkdir(parents=True, exist_ok=True)
                made.add(d)
            batch.append((rel, rec))
            if len(batch) == PLACE_BATCH:
                window.append(run.pool.submit(place_batch, batch))
                batch = []
                if len(window) >= FRESH_WINDOW * run.workers:
                    drain(window.popleft())
        if batch:
            window.append(run.pool.submit(place_batch, batch))
        while window:
            drain(window.popleft())
    except BaseException:
        for fut in window:
            fut.cancel()
        writer.abort()
        raise
    try:
        _fingerprints(project, base, tree.DirRecord(meta.size, meta.digest, meta.files), writer, run.pool)
    except (OSError, FastregError):
        pass  # fingerprints only spare the next status some work
    writer.commit()


def _fingerprints(project: Project, base: Path, root: tree.DirRecord, writer: StatCacheWriter,
                  pool: ThreadPoolExecutor) -> None:
    """After a fresh check-out: the fingerprint of every folder that holds exactly the files of
    its tree node, each with the stat settle() gave it (so none was written since), so that the
    first status reads no folder. Folders are listed a few ahead in the pool."""
    def visit(prefix: str, rec: tree.DirRecord, listed: Future[Listing] | None) -> None:
        files, subs = [], {}
        for name, r in tree.iter_dir(project.cache, rec.digest):
            if isinstance(r, tree.DirRecord):
                subs[name] = r
            else:
                files.append(name)
        if listed is not None:
            text, _, newest, _, odd = listed.result()
            found = listed_files(text) if odd == 0 else None
            placed = writer.written(prefix) if found is not None and len(found) == len(files) else {}
            if found is not None and len(placed) == len(files) and all(
                    (e := placed.get(name)) is not None and found[name] == e[:3] for name in found):
                writer.summary(prefix, fingerprint(text), newest, rec.digest, rec.size, rec.files,
                               tuple((n, r.digest, r.size, r.files) for n, r in subs.items()), settled=True)
        here = os.path.join(base, prefix)
        todo = iter([n for n in subs if os.path.isdir(os.path.join(here, n))])
        ahead: deque[tuple[str, Future[Listing]]] = deque()
        for name in subs:
            while len(ahead) < AHEAD and (nxt := next(todo, None)) is not None:
                ahead.append((nxt, pool.submit(listing, os.path.join(here, nxt))))
            fut = ahead.popleft()[1] if ahead and ahead[0][0] == name else None
            visit(prefix + name + "/", subs[name], fut)

    visit("", root, pool.submit(listing, str(base)))


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

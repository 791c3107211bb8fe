"""Command line: parse arguments, show progress, map FastregError to `error: ...` + exit code.

Imports of heavy modules happen inside the command functions, so `fastreg status` on a large
workspace does not pay for what it does not use."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, NoReturn

from fastreg import __version__
from fastreg.errors import DependencyError, FastregError, ReadOnlyStore, UsageError, one_line
from fastreg.quoting import quote, unquote

if TYPE_CHECKING:
    from fastreg.repo.checkout import CheckoutResult
    from fastreg.repo.push import SyncResult
    from fastreg.repo.status import TargetStatus


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as one `error: ...` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class _Bar:
    """tqdm bar: phase as the description, bytes with rate and ETA (when the total is known),
    files done as the postfix."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                        leave=False, dynamic_ncols=True)
        self.files = 0

    def __call__(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bar.set_postfix_str(f"{self.files} files", refresh=False)
        self.bar.update(nbytes)

    def phase(self, name: str, total_bytes: int | None = None) -> None:
        self.bar.reset(total=total_bytes)
        self.files = 0
        self.bar.set_description_str(name)  # set_description adds ": ", which tqdm adds again when there is no total


@contextmanager
def _progress(args: argparse.Namespace, desc: str) -> Iterator[_Bar | None]:
    """A progress bar on stderr when it is a terminal and -q is off."""
    if args.quiet or not sys.stderr.isatty():
        yield None
        return
    bar = _Bar(desc)
    try:
        yield bar
    finally:
        bar.bar.close()


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _count(n: int, noun: str) -> str:
    """'1 file', '2 files'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _checked_out(res: CheckoutResult) -> str:
    return f"{_count(res.placed, 'file')} restored, {res.removed} removed, {res.unchanged} unchanged"


def _steady_malloc() -> None:
    """Keep large buffers out of glibc's heaps. After a big buffer is freed glibc raises its mmap
    threshold (up to 32 MiB), so from then on the 4-16 MiB packs and responses that push and pull
    move are carved from per-thread heaps that rarely shrink: peak RSS then grows with the bytes
    moved instead of what is held at once. Pinning the threshold keeps them mmapped and returned
    on free (a 100k-file fetch peaks at 51 MB instead of 75 MB). At 1 MiB, not lower: asyncio's
    256 KiB socket reads must stay on the heap (at 128 KiB each read is a fresh mmap, page faults
    and munmap: ~1 s of kernel time per GB fetched from S3). The trim threshold stays glibc's:
    pinning it as well gains nothing and costs 10 MB at 100k files.
    Commands that move data call it; the library leaves the process's allocator alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc (musl has no such knob and no such growth)


# -- commands ----------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fastreg.repo.project import Project

    p, existed = Project.init(Path.cwd(), args.no_scm)
    if existed:
        no_scm = p.config.get("core", {}).get("no_scm")
        _say(args, f"{p.dir} is a fastreg project already" + ("" if no_scm else "; its Git set-up is in place (the "
             "metafile merge driver registered in this clone, .gitattributes: commit it)"))
        return 0
    _say(args, f"Initialized fastreg project in {p.dir}")
    if not args.no_scm:
        _say(args, "Commit .fastreg/config, .fastreg/.gitignore and .gitattributes to Git.")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from fastreg.repo import add
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "add") as progress:
        results = add.add(project, args.targets, jobs=args.jobs, progress=progress, force=args.force,
                          prune=args.prune)
    for r in results:
        what = f"{_count(r.meta.files, 'file')}, " if r.meta.kind == "dir" else ""
        verb = "Added" if r.new else "Updated" if r.changed else "Unchanged"
        if r.skipped and not args.quiet:
            shown = r.skipped if args.verbose else r.skipped[:3]
            more = f"; and {len(r.skipped) - len(shown)} more (-v lists all)" if len(r.skipped) > len(shown) else ""
            left = "1 entry that is" if len(r.skipped) == 1 else f"{len(r.skipped)} entries that are"
            print(f"warning: {r.target.rel}: left out {left} not a file or folder: "
                  + ", ".join(f"{p} ({why})" for p, why in shown) + more, file=sys.stderr)
        _say(args, f"{verb} {r.target.rel}.fastreg ({what}{_human(r.meta.size)})")
        if r.kept:
            _say(args, f"    kept {_count(r.kept, 'file')} never checked out here (not in the workspace); "
                       f"`fastreg add --prune {r.target.rel}` records them as deleted")
    if results and any(r.changed for r in results):
        import os.path
        import shlex

        names = [f"{r.target.rel}.fastreg" for r in results if r.changed]
        names += sorted({os.path.join(os.path.dirname(r.target.rel), ".gitignore") for r in results if r.changed})
        # As the user would type them here: from the current folder, shell-quoted, after `--`
        # when one could pass for an option (`fastreg add -- -n.txt`).
        typed = [shlex.quote(os.path.relpath(project.root / n)) for n in names]
        dashes = "-- " if any(n.startswith("-") for n in typed) else ""
        _say(args, "To track the changes with Git, run:\n    git add " + dashes + " ".join(typed))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from fastreg.errors import UnmergedError
    from fastreg.repo import merging
    from fastreg.repo.project import Project

    project = Project.find()
    side: Literal["ours", "theirs"] | None = "ours" if args.ours else "theirs" if args.theirs else None
    with project.lock():
        outcomes = merging.merge(project, args.paths, side)
    left = 0
    for o in outcomes:
        meta_rel = f"{o.target}.fastreg"
        if o.conflicts:
            left += len(o.conflicts)
            for c in o.conflicts:
                print(f"CONFLICT {c.line(o.target)}", file=sys.stderr)
        elif o.meta is None:
            _say(args, f"Merged {meta_rel}: deleted; run `git rm {meta_rel}`")
        else:
            what = f"{_count(o.meta.files, 'file')}, " if o.meta.kind == "dir" else ""
            _say(args, f"Merged {meta_rel} ({what}{_human(o.meta.size)}); run `git add {meta_rel}`, and "
                       f"`fastreg pull {o.target}` for the files this workspace lacks")
    if left:
        raise UnmergedError(f"{_count(left, 'conflict')} left (listed above); take a side with `fastreg merge "
                            "--ours|--theirs [PATH...]`, or fix the data and `fastreg add`")
    return 0


def cmd_merge_driver(args: argparse.Namespace) -> int:
    from fastreg.repo import merging

    return merging.run_driver(args.base, args.ours, args.theirs, args.merged)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when nothing changed; with -q nothing is printed and a change exits 1 (as `dvc
    status -q`, so scripts can test it), and a failure exits 4, never 1 (as `git diff --quiet`
    answers with 1 and fails with more)."""
    if args.quiet and args.json:
        raise UsageError("status: -q answers with the exit code alone and --json on stdout; use one of them")
    try:
        return _status(args)
    except FastregError as exc:
        if args.quiet and exc.exit_code == 1:
            exc.exit_code = STATUS_FAILED
        raise


STATUS_FAILED = 4  # `status -q` could not tell (an error line says why): distinct from "changed" (1)


def _status(args: argparse.Namespace) -> int:
    import json

    from fastreg.repo import status
    from fastreg.repo.project import Project

    project = Project.find()
    if args.remote is not None:
        from fastreg.repo import remote_admin

        name, remote_status = remote_admin.status_remote(project, args.targets, args.remote or None)
        behind = [rs for rs in remote_status if rs.missing_files]
        if args.json:
            print(json.dumps({"remote": name, "changed": bool(behind), "targets": [
                {"path": rs.name, "files": rs.total_files, "missing_files": rs.missing_files,
                 "missing_chunks": rs.missing_chunks, "missing_bytes": rs.missing_bytes}
                for rs in remote_status]}, indent=1))
        elif not args.quiet:
            for rs in behind:
                print(f"{rs.name}:\n    not in remote {name}: {rs.missing_files} of "
                      f"{_count(rs.total_files, 'file')} ({_human(rs.missing_bytes)} in "
                      f"{_count(rs.missing_chunks, 'chunk')} to upload); run `fastreg push`")
            if not behind:
                print(f"Everything is in remote {name}.")
        return 1 if args.quiet and behind else 0
    from fastreg.registry.ops import moved_sources

    results = status.status(project, args.targets, jobs=args.jobs)
    moved = moved_sources([r.meta for r in results if r.meta is not None])
    if len(moved) != len(results):  # unmerged metafiles have no source to follow
        it = iter(moved)
        moved = [next(it) if r.meta is not None else None for r in results]
    dirty = any(r.changed for r in results) or any(moved)
    if args.json:
        print(json.dumps({"changed": dirty, "targets": [_status_json(r, m) for r, m in zip(results, moved,
                                                                                             strict=True)]},
                         indent=1))
    if not args.quiet:
        for e in status.git_exposure(project, [r.target for r in results if os.path.lexists(r.target.data)]):
            rel = quote(e.target.rel)
            if e.staged:
                print(f"warning: {rel}: {_count(e.staged, 'file')} of tracked data in Git's index (a commit would "
                      f"carry the bytes); `git rm -r --cached -- {rel}` takes them out (the data stays)",
                      file=sys.stderr)
            if not e.ignored:
                print(f"warning: {rel} is not git-ignored (`git add` would take its data); `fastreg add {rel}` "
                      "writes its .gitignore line again", file=sys.stderr)
    if not args.json and not args.quiet:
        for r, head in zip(results, moved, strict=True):
            _print_status(r, head, args.verbose)
        if not dirty:
            print("Data and metafiles are up to date." if results else "Nothing is tracked yet.")
    return 1 if args.quiet and dirty else 0


_STATE_TEXT = {
    "deleted": "deleted (data is missing; `fastreg checkout {0}` restores it)",
    "not-pulled": "not in the workspace (never pulled here; run `fastreg pull {0}`)",
    "not-in-cache": "not in cache (run `fastreg pull {0}`)",
}  # keyed by status.State values


def _print_status(r: TargetStatus, moved: str | None, verbose: bool) -> None:
    lines = []
    if r.state == "unmerged":  # State.UNMERGED
        from fastreg.objects.metafile import unmerged_hint

        limit = None if verbose else 20
        lines.append(f"unmerged: a Git merge left {_count(len(r.conflicts), 'conflict')}")
        lines += [f"conflict: {c}" for c in r.conflicts[:limit]]
        if limit is not None and len(r.conflicts) > limit:
            lines.append(f"conflict: ... and {len(r.conflicts) - limit} more (-v lists all)")
        lines.append(unmerged_hint(r.target.rel) + f"; or fix the data and `fastreg add {r.target.rel}`")
    elif r.state in _STATE_TEXT:
        lines.append(_STATE_TEXT[r.state].format(r.target.rel))
    elif r.meta is not None and r.state == "changed" and r.meta.kind == "file":  # State.CHANGED
        lines.append("modified")
    else:
        limit = None if verbose else 20
        for label, items in (("added", r.added), ("modified", r.modified), ("deleted", r.deleted)):
            for item in items[:limit]:
                lines.append(f"{label + ':':10} {quote(item)}")
            if limit is not None and len(items) > limit:
                lines.append(f"{label + ':':10} ... and {len(items) - limit} more (-v lists all)")
    if r.not_pulled:
        lines.append(f"{_count(len(r.not_pulled), 'file')} not in the workspace (never pulled here; "
                     f"`fastreg pull {r.target.rel}` brings them)")
    if moved is not None and r.meta is not None and r.meta.source is not None:
        lines.append(f"import source {r.meta.source.rev or 'default branch'} moved to {moved[:10]}; "
                     f"run `fastreg update {r.target.rel}.fastreg`")
    if lines:
        print(f"{quote(r.target.rel)}:")
        for line in lines:
            print(f"    {line}")


def _status_json(r: TargetStatus, moved: str | None) -> dict[str, object]:
    # Paths from the project's root, as in `diff --json` (one rule for every JSON output)
    def full(items: list[str]) -> list[str]:
        if r.meta is not None and r.meta.kind == "file":
            return [r.target.rel for _ in items]
        return [f"{r.target.rel}/{p}" for p in items]

    out: dict[str, object] = {"path": r.target.rel, "state": r.state.value, "added": full(r.added),
                              "modified": full(r.modified), "deleted": full(r.deleted),
                              "not_pulled": full(r.not_pulled)}
    if r.conflicts:
        out["conflicts"] = r.conflicts
    if r.meta is not None and r.meta.source is not None:
        src = r.meta.source
        out["import"] = {"url": src.url, "path": src.path, "rev": src.rev, "rev_lock": src.rev_lock,
                         "moved_to": moved}
    return out


def cmd_checkout(args: argparse.Namespace) -> int:
    from fastreg.repo import checkout
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "checkout") as progress:
        res = checkout.checkout(project, args.targets, force=args.force, jobs=args.jobs, progress=progress)
    _say(args, _checked_out(res))
    return 0


def _grace(text: str) -> float:
    """--grace: seconds, or with a unit (30s, 10m, 2h, 1d); 0 or `now` for no grace."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if text.strip().lower() == "now":
        return 0.0
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 0, now, 90s, 30m, 2h, 1d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def cmd_gc(args: argparse.Namespace) -> int:
    from fastreg.repo import gc
    from fastreg.repo.project import Project

    if not (args.workspace or args.all_commits):
        raise UsageError("say what to keep: `fastreg gc --workspace` or `fastreg gc --all-commits`")
    project = Project.find()
    with project.lock():
        if args.remote is not None:  # a remote that cannot be cleaned is refused before anything is deleted
            from fastreg.repo import remotes as rm

            remote = rm.pick(project.config, args.remote or None)
            if remote.read_only:
                raise ReadOnlyStore(f"remote {remote.name!r} ({remote.url}) is read-only; it cannot be cleaned "
                                   "(nothing was deleted)")
        res = gc.gc(project, all_commits=args.all_commits, grace=args.grace)
        _say(args, f"Removed {_count(res.removed_files, 'file')} and {_count(res.removed_trees, 'tree')} "
                   f"({_human(res.removed_bytes)}); kept {_count(res.kept, 'object')}"
                   + (f", including what {_count(res.other_projects, 'other project')} sharing the cache use"
                      if res.other_projects else "")
                   + (f"; left {_count(res.kept_recent, 'recent object')} of the shared cache alone"
                      if res.kept_recent else ""))
        if args.remote is not None:
            from fastreg.repo import remote_admin

            metas = gc.referenced_metas(project, args.all_commits)
            outcome = remote_admin.gc_remote(project, metas, args.remote or None, args.grace)
            r = outcome.result
            _say(args, f"Remote {outcome.remote}: deleted {_count(r.packs_deleted, 'pack')}, rewrote "
                       f"{r.packs_rewritten}, deleted {_count(r.objects_deleted, 'object')}, freed "
                       f"{_human(r.bytes_freed)}"
                       + (f"; kept what {_count(outcome.other_projects, 'other project')} pushed there refer to"
                          if outcome.other_projects else "")
                       + (f"; the grace period kept {_count(r.kept_young, 'recent pack')} "
                          f"({_human(r.kept_young_bytes)}) whatever they hold" if r.kept_young else ""))
    return 0


def cmd_remote(args: argparse.Namespace) -> int:
    from fastreg.repo import config as cfg
    from fastreg.repo import remotes as rm
    from fastreg.repo.project import Project

    project = Project.find()
    if args.remote_command == "add":
        rm.add(project.dir, args.name, args.url, args.default, args.local, args.force)
        _say(args, f"Added remote {args.name} -> {args.url}" + (" (default)" if args.default else ""))
    elif args.remote_command == "modify":
        if args.value is None and not args.unset:
            raise UsageError("give a VALUE (or --unset)")
        rm.modify(project.dir, args.name, args.option, args.value or "", args.local, args.unset)
    elif args.remote_command == "remove":
        rm.remove(project.dir, args.name, args.local)
    elif args.remote_command == "default":
        rm.set_default(project.dir, args.name, args.local)
    elif args.remote_command == "projects":
        import time

        from fastreg.repo import remote_admin

        name, found = remote_admin.remote_projects(project, args.name)
        for p in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.pushed))
            print(f"{p.id}  {when}  {_count(p.roots, 'root'):>10}  {p.where}" + ("  (this clone)" if p.this else ""))
        if not found:
            _say(args, f"No project has pushed a snapshot to {name} yet.")
    elif args.remote_command == "retire":
        from fastreg.repo import remote_admin

        name, retired = remote_admin.retire(project, args.name, args.ids, args.older_than)
        _say(args, f"Retired {_count(len(retired), 'project')} on {name}"
             + (f": {' '.join(retired)}" if retired else "")
             + "; the next `fastreg gc -r` frees what only they referred to")
    else:
        doc = cfg.merged(project.dir)
        default = rm.default_name(doc)
        local = cfg.read_toml(project.dir / "config.local").get("remote", {})
        for name, remote in sorted(rm.all_remotes(doc).items()):
            overridden = local.get(name, {}) if isinstance(local.get(name), dict) else {}

            def shown(key: str, value: object, overridden: dict[str, object] = overridden) -> str:
                return f"{key}={value}" + (" (config.local)" if args.verbose and key in overridden else "")

            extra = "".join(" " + shown(k, v) for k, v in sorted(remote.options.items()))
            url = remote.url + (" (config.local)" if args.verbose and "url" in overridden else "")
            print(f"{name}\t{url}{extra}" + ("\t(default)" if name == default else ""))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.repo import push as push_mod
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "push") as progress:
        res = push_mod.push(project, args.targets, args.remote, args.jobs, progress)
    if res.packs:
        _say(args, f"Pushed {_human(res.bytes)} in {_count(res.packs, 'pack')} to {res.remote} "
                   f"({_count(res.requests, 'request')})")
    elif res.remote:
        _say(args, f"Everything is already in {res.remote} ({_count(res.requests, 'request')})")
    if res.repaired:
        _say(args, f"Repaired {_count(res.repaired, 'damaged pack')} that `fastreg check` found: their chunks are "
                   "in new packs, the damaged ones withdrawn from the index")
    if res.imports:
        _say(args, f"Skipped {_count(res.imports, 'import')}: imported data is pushed by its registry")
    return 0


def _fetched(args: argparse.Namespace, res: SyncResult) -> None:
    _say(args, f"Fetched {_count(res.files, 'file')} ({_human(res.bytes)}) from {res.remote}"
               + (f"; {res.skipped} {'was' if res.skipped == 1 else 'were'} in the cache already"
                  if res.skipped else ""))


def cmd_fetch(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.registry.ops import import_session
    from fastreg.repo import pull as pull_mod
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "fetch") as progress:
        res, _ = pull_mod.fetch(project, args.targets, args.remote, args.jobs, progress, imports=import_session)
    _fetched(args, res)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.registry.ops import import_session
    from fastreg.repo import pull as pull_mod
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "pull") as progress:
        fetched, res = pull_mod.pull(project, args.targets, args.remote, args.jobs, args.force, progress,
                                 imports=import_session)
    _fetched(args, fetched)
    _say(args, _checked_out(res))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.registry import ops as reg

    with _progress(args, "get") as progress:
        res = reg.get(args.url, args.path, args.out, args.rev, args.jobs, progress, force=args.force)
    _say(args, f"Got {args.path} -> {res.out} ({_count(res.files, 'file')}, {_human(res.size)}; downloaded "
               f"{_human(res.downloaded)}) at {res.commit[:10]}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.registry import ops as reg
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "import") as progress:
        res = reg.import_(project, args.url, args.path, args.out, args.rev, args.force, args.jobs, progress)
    _say(args, f"Imported {args.path} -> {res.target} ({_count(res.files, 'file')}, {_human(res.size)}; downloaded "
               f"{_human(res.downloaded)}) at {res.commit[:10]}\nTo track it with Git, run:\n"
               f"    git add {res.target}.fastreg")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    _steady_malloc()
    from fastreg.registry import ops as reg
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock(), _progress(args, "update") as progress:
        for target in args.targets:
            res = reg.update(project, target, args.rev, args.jobs, progress, args.path)
            if res.changed:
                _say(args, f"Updated {res.target} to {res.rev or 'the default branch'} ({res.commit[:10]}): "
                           f"{_count(res.files, 'file')}, {_human(res.size)}; downloaded {_human(res.downloaded)}")
            else:
                _say(args, f"{res.target} is up to date ({res.rev or 'the default branch'} at {res.commit[:10]})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from fastreg.registry import ops as reg

    entries = reg.list_(args.url, args.path, args.rev, args.recursive, args.tracked_only)
    if args.json:
        print(json.dumps([{"path": e.path, "type": e.type, "size": e.size, "tracked": e.tracked,
                           **({"files": e.files} if e.files is not None else {})} for e in entries], indent=1))
        return 0
    # The path is the last field of every line (as `ls -l`, `git ls-tree`): `awk '{print $NF}'`
    # gives paths. Columns: tracked mark, type, size, file count ("-" for none).
    for e in entries:
        mark = "*" if e.tracked else "-"
        files = str(e.files) if e.files is not None else "-"
        print(f"{mark} {e.type:4} {_human(e.size).replace(' ', ''):>9} {files:>8}  "
              f"{quote(e.path + ('/' if e.type == 'dir' else ''))}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    if args.repo is not None:
        from fastreg.registry import ops as reg

        if not args.args or len(args.args) > 3:
            raise UsageError("give `fastreg diff --repo URL A [B [PATH]]`")
        a, b, path = [*args.args, None, None][:3]
        assert a is not None
        res = reg.diff(args.repo, a, b, path)
    else:
        from fastreg import git
        from fastreg.registry.ops import import_session
        from fastreg.repo import diff as df
        from fastreg.repo.project import Project

        project = Project.find()
        revs: list[str] = []
        targets: list[str] = []
        for arg in args.args:  # leading revisions (that are not paths here), then targets
            if not targets and len(revs) < 2 and not os.path.lexists(arg) and \
                    not os.path.lexists(arg + ".fastreg") and git.commit_of(project.root, arg) is not None:
                revs.append(arg)
            else:
                targets.append(arg)
        res = df.project_diff(project, revs[0] if revs else None, revs[1] if len(revs) > 1 else None, targets,
                              imports=import_session)
    _print_diff(args, res)
    return 0


def _print_diff(args: argparse.Namespace, res: object) -> None:
    import json

    from fastreg.repo.diff import KINDS, DiffResult

    assert isinstance(res, DiffResult)
    summary = res.summary()
    if args.json:
        doc: dict[str, object] = {"a": res.a, "b": res.b}
        for kind in KINDS:
            doc[kind] = [{"path": c.path, "size": c.size,
                          **({"old_size": c.old_size} if c.kind == "modified" else {}),
                          **({"old_path": c.old_path} if c.kind == "renamed" else {})}
                         for c in res.changes if c.kind == kind]
        doc["summary"] = summary
        print(json.dumps(doc, indent=1))
        return
    if args.quiet:
        return
    if args.md:
        print("| Status | Path | Size |\n|---|---|---|")
        for c in res.changes:
            path = f"{quote(c.old_path or '')} -> {quote(c.path)}" if c.kind == "renamed" else quote(c.path)
            size = f"{_human(c.old_size or 0)} -> {_human(c.size)}" if c.kind == "modified" else _human(c.size)
            cell = path.replace("|", "\\|")
            print(f"| {c.kind} | {cell} | {size} |")
    else:
        print(f"{res.a} -> {res.b}")
        for c in res.changes:
            path = f"{quote(c.old_path or '')} -> {quote(c.path)}" if c.kind == "renamed" else quote(c.path)
            print(f"{c.kind:9} {_human(c.size).replace(' ', ''):>9}  {path}")
    print(", ".join(f"{_count(summary[k]['files'], 'file')} {k} ({_human(summary[k]['bytes'])})"
                    if summary[k]["files"] else f"0 {k}" for k in KINDS))


def _subset(text: str) -> float | int:
    """--read-data-subset: a percentage (5%) or a number of packs (10)."""
    t = text.strip()
    try:
        if t.endswith("%"):
            pct = float(t[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return pct / 100
        n = int(t)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a percentage (e.g. 5%) or a number of packs") from None


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when everything checked is whole, 3 when something is damaged or missing."""
    import json

    from fastreg.repo import check
    from fastreg.repo.project import Project

    project = Project.find()
    if args.repair and not args.cache:
        raise UsageError("--repair goes with --cache (a remote is repaired by `fastreg push`)")
    if args.cache:
        with project.lock():
            cres = check.check_cache(project, args.repair)
        problems = cres.problems
        summary = {"cache": str(project.cache.root), "files": cres.files, "trees": cres.trees,
                   "bytes_read": cres.bytes_read, "moved_aside": cres.moved_aside}
        head = (f"Checked the cache {project.cache.root}: {_count(cres.files, 'file')}, "
                f"{_count(cres.trees, 'tree node')} ({_human(cres.bytes_read)} read)")
    else:
        read: float | int | bool | None = (True if args.read_data else
                                           args.read_data_subset if args.read_data_subset is not None else False)
        name, rep = check.check_remote(project, args.targets, args.remote, args.all_commits, read, args.jobs)
        problems = rep.problems
        summary = {"remote": name, "packs": rep.packs, "segments": rep.segments, "trees": rep.trees,
                   "files": rep.files, "chunks": rep.chunks, "packs_read": rep.packs_read, "bytes_read": rep.bytes_read}
        head = (f"Checked remote {name}: {_count(rep.segments, 'index segment')}, {_count(rep.trees, 'tree node')}, "
                f"{_count(rep.files, 'file')} ({_count(rep.chunks, 'chunk')})"
                + (f"; read {_count(rep.packs_read, 'pack')} ({_human(rep.bytes_read)})" if read is not False else ""))
    if args.json:
        print(json.dumps({**summary, "clean": not problems, "problems": [
            {"kind": p.kind, "object": p.key, "detail": p.detail, "affects": p.affects, "affected": p.affected}
            for p in problems]}, indent=1))
        return 3 if problems else 0
    if not args.quiet:
        print(head)
        for p in problems:
            more = f" (and {p.affected - len(p.affects)} more)" if p.affected > len(p.affects) else ""
            breaks = f"; breaks {', '.join(p.affects)}{more}" if p.affects else ""
            print(f"{p.kind}: {p.key}: {p.detail}{breaks}")
        if not problems:
            print("No problems found.")
        elif args.cache:
            kinds = sorted({p.kind for p in problems})
            print(f"{_count(len(problems), 'problem')} ({', '.join(kinds)})"
                  + ("; moved aside: the next `fastreg pull` or `fastreg add` stores them again" if args.repair
                     else "; `fastreg check --cache --repair` moves them aside"))
        else:
            kinds = sorted({p.kind for p in problems})
            print(f"{_count(len(problems), 'problem')} ({', '.join(kinds)}); recorded: the next `fastreg push` "
                  "from a project that has the data puts it back")
    return 3 if problems else 0


def cmd_remove(args: argparse.Namespace) -> int:
    from fastreg.repo import track
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock():
        removed = track.remove(project, args.targets, args.outs)
    for t in removed:
        _say(args, f"Stopped tracking {t.rel}" + (" and deleted its data" if args.outs else " (its data stays)"))
    if removed:
        _say(args, "To record it with Git, run:\n    git add -A " + " ".join(f"{t.rel}.fastreg" for t in removed)
             + " " + " ".join(sorted({os.path.join(os.path.dirname(t.rel), ".gitignore") for t in removed})))
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    from fastreg.repo import track
    from fastreg.repo.project import Project

    project = Project.find()
    with project.lock():
        m = track.move(project, args.src, args.dst)
    _say(args, f"Moved {m.src.rel} -> {m.dst.rel}"
               + ("" if m.data_moved else " (metafile only: the data was not here)"))
    gitignores = sorted({os.path.join(os.path.dirname(t.rel), ".gitignore") for t in (m.src, m.dst)})
    _say(args, f"To record it with Git, run:\n    git add -A {m.src.rel}.fastreg {m.dst.rel}.fastreg "
               + " ".join(gitignores))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    _steady_malloc()
    import json
    from pathlib import Path

    from fastreg import bench
    from fastreg.bench import core, report
    from fastreg.bench.runner import Cell

    sizes = bench.parse_sizes(args.sizes)
    jobs = bench.parse_jobs(args.jobs)
    duration = bench.parse_duration(args.duration)
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        if not report.plot_available():
            raise DependencyError("--plot needs matplotlib: pip install 'fastreg[plot]'")
        if not plot.absolute().parent.is_dir():
            raise UsageError(f"--plot {plot}: the directory {plot.absolute().parent} does not exist")
    dataset = Path(args.dataset) if args.dataset else None
    target = core.resolve(args.target, args.endpoint_url, args.region, args.profile)
    show = not args.quiet and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=None, desc="bench: warm-up", unit="cell", file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_cell(cell: Cell, done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.set_description(f"bench: {cell.op} {bench.human_size(cell.size)} x{cell.jobs}")
            bar.update(1)

    def on_phase(name: str) -> None:
        if bar is not None:
            bar.set_description(f"bench: {name}")
            bar.refresh()

    try:
        res = core.run(target, sizes, jobs, duration, dataset, args.keep, on_cell, on_phase)
    finally:
        if bar is not None:
            bar.close()
    doc = res.to_json()
    if plot is not None:
        report.plot(doc, plot)
    if args.json:
        print(json.dumps(doc, indent=1))
    elif not args.quiet:
        print(report.table(doc))
        if plot is not None:
            print(f"Plot: {plot}")
    return 0


# -- parser ------------------------------------------------------------------------------------
def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid jobs count {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("jobs must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one declaration per command and flag
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="more detail (a traceback on internal errors)")
    parser = _Parser(
        prog="fastreg",
        description="fastreg: a data registry. Version datasets in Git as small metafiles; "
        "keep the bytes in a content-addressed cache and object storage.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fastreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("init", parents=[common], help="make this Git work tree a fastreg project",
                       description="Create .fastreg/ (config and cache) in the current directory.")
    p.add_argument("--no-scm", action="store_true", help="allow a directory that is not in a Git work tree")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add", parents=[common], help="track files or directories",
                       description="Hash PATH (a file or a directory), store its content in the cache, "
                       "write PATH.fastreg and add PATH to the .gitignore beside it. Re-run after "
                       "changes to record the new version; unchanged files are not read again.")
    p.add_argument("targets", nargs="+", metavar="PATH")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, help="hashing threads (default: cores)")
    p.add_argument("-f", "--force", action="store_true",
                   help="also record an imported path as this project's own data (dropping its import "
                   "record); implies --prune")
    p.add_argument("--prune", action="store_true",
                   help="record the workspace exactly: recorded files never checked out here (a partial "
                   "pull) become deleted too (by default they are kept in the new version)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("status", parents=[common], help="show what changed in the workspace",
                       description="Compare the workspace with the metafiles: files added, modified "
                       "or deleted inside each tracked path (all of them by default), files never pulled "
                       "here, and imports whose source branch moved. Exit 0; with -q nothing is printed and "
                       "the exit code is 1 when something changed.")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, help="hashing threads (default: cores)")
    p.add_argument("--remote", "-r", nargs="?", const="", default=None, metavar="NAME",
                   help="show what is not in the remote yet (the default remote, or NAME)")
    p.add_argument("--json", action="store_true", help="the same facts as JSON, for scripts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("checkout", parents=[common], help="restore the workspace from the cache",
                       description="Make each tracked path match its metafile, from the local cache. "
                       "Files whose current content is in the cache are replaced freely; local changes "
                       "that exist nowhere else need --force to be discarded.")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    p.add_argument("-f", "--force", action="store_true", help="discard local changes that are not in the cache")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, help="parallel file writes (default: cores)")
    p.set_defaults(func=cmd_checkout)

    p = sub.add_parser("gc", parents=[common], help="remove cache objects no metafile refers to",
                       description="Delete cache objects that no metafile refers to: those in the "
                       "workspace (--workspace) or in any commit of any branch or tag (--all-commits). A "
                       "shared cache.dir keeps what every project using it refers to (projects register "
                       "in it when they run a command; entries of projects that are gone are pruned).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-w", "--workspace", action="store_true", help="keep what the workspace's metafiles use")
    scope.add_argument("-a", "--all-commits", action="store_true", help="keep what any Git commit's metafiles use")
    p.add_argument("-r", "--remote", metavar="NAME", nargs="?", const="", default=None,
                   help="also clean this remote (the default remote without NAME); objects younger than the "
                   "remote's gc_grace (default 3600 s) are left alone, so concurrent pushes are safe")
    p.add_argument("--grace", type=_grace, metavar="DURATION", default=None,
                   help="leave objects younger than this alone, e.g. 10m, instead of the remote's gc_grace "
                   "(with -r) and the 1 h a shared cache.dir gets; 0 or `now`: none (only when no push to "
                   "the remote, and no add into the shared cache, is running)")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("remote", parents=[common], help="configure remotes (where the bytes are stored)",
                       description="Remotes are a local directory, s3://BUCKET/PREFIX (any S3-compatible "
                       "service) or http(s)://HOST/PATH (read-only). They are recorded in .fastreg/config, "
                       "which is committed, so consumers of the registry find the default remote by themselves.")
    rsub = p.add_subparsers(dest="remote_command", metavar="ACTION", parser_class=_Parser, required=True)
    rp = rsub.add_parser("add", parents=[common], help="add a remote")
    rp.add_argument("-d", "--default", action="store_true", help="make it the default remote")
    rp.add_argument("-f", "--force", action="store_true", help="replace a remote of that name")
    rp.add_argument("--local", action="store_true", help="write to .fastreg/config.local (not committed)")
    rp.add_argument("name", metavar="NAME")
    rp.add_argument("url", metavar="URL")
    rp = rsub.add_parser("modify", parents=[common], help="set an option of a remote",
                         description="Options: endpoint_url (S3-compatible service), region, profile "
                         "(AWS profile), read_only (true/false), pack_size (e.g. 16M), jobs, gc_grace (seconds "
                         "that remote gc leaves new objects alone, default 3600), url.")
    rp.add_argument("--local", action="store_true", help="write to .fastreg/config.local (not committed)")
    rp.add_argument("--unset", action="store_true", help="remove the option")
    rp.add_argument("name", metavar="NAME")
    rp.add_argument("option", metavar="OPTION")
    rp.add_argument("value", metavar="VALUE", nargs="?")
    rp = rsub.add_parser("list", parents=[common], help="list remotes",
                         description="List remotes with their options, .fastreg/config and config.local merged "
                         "option by option; with -v, options set in config.local are marked so.")
    rp = rsub.add_parser("default", parents=[common], help="set the default remote")
    rp.add_argument("--local", action="store_true", help="write to .fastreg/config.local (not committed)")
    rp.add_argument("name", metavar="NAME")
    rp = rsub.add_parser("projects", parents=[common], help="list the projects whose data a remote keeps",
                         description="Every push leaves a snapshot of what its project (each clone) refers "
                         "to; remote gc keeps what the latest snapshot of every project reaches. One line per "
                         "project: ID, time of its latest push, roots, host:path of the clone.")
    rp.add_argument("name", metavar="NAME", nargs="?", help="the remote (default: the default remote)")
    rp = rsub.add_parser("retire", parents=[common], help="stop keeping a project's data on a remote",
                         description="Delete the snapshots of projects (this clone's without IDs), so the "
                         "next `fastreg gc -r` keeps their data only if another project refers to it. For "
                         "clones that are gone (a CI job, a laptop): see `fastreg remote projects`.")
    rp.add_argument("name", metavar="NAME")
    rp.add_argument("ids", metavar="ID", nargs="*")
    rp.add_argument("--older-than", type=_grace, metavar="DURATION", default=None,
                    help="also every project whose latest push is older than this, e.g. 90d")
    rp = rsub.add_parser("remove", parents=[common], help="remove a remote")
    rp.add_argument("--local", action="store_true", help="edit .fastreg/config.local")
    rp.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remote)

    for name, func, text in (
        ("push", cmd_push, "upload to a remote what it lacks (packs of deduplicated chunks)"),
        ("fetch", cmd_fetch, "download from a remote into the cache (ranged reads, verified)"),
        ("pull", cmd_pull, "fetch, then check out into the workspace"),
    ):
        p = sub.add_parser(name, parents=[common], help=text, description=text[0].upper() + text[1:] + ". "
                           "TARGETs are tracked paths, their metafiles, or files and folders inside a "
                           "tracked directory (only that part moves); all tracked paths by default.")
        p.add_argument("targets", nargs="*", metavar="TARGET")
        p.add_argument("-r", "--remote", metavar="NAME", help="the remote (default: the project's default remote)")
        p.add_argument("-j", "--jobs", type=_jobs, default=None, help="concurrent requests")
        if name == "pull":
            p.add_argument("-f", "--force", action="store_true", help="discard local changes that are not in the cache")
        p.set_defaults(func=func)

    for name, func, text in (
        ("get", cmd_get, "download data or a file from a registry (works outside any project)"),
        ("import", cmd_import, "like get, into this project, recording where it came from (OUT.fastreg)"),
    ):
        p = sub.add_parser(name, parents=[common], help=text, description=text[0].upper() + text[1:] + ". "
                           "URL is anything `git clone` takes (a path, file://, https, ssh). PATH is a tracked "
                           "file or directory, a file or folder inside a tracked directory (only its chunks are "
                           "downloaded), or a plain Git file.")
        p.add_argument("url", metavar="URL")
        p.add_argument("path", metavar="PATH")
        p.add_argument("-o", "--out", metavar="OUT", help="where to put it (default: the last part of PATH)")
        p.add_argument("--rev", metavar="REV", help="branch, tag or commit (default: the default branch)")
        p.add_argument("-j", "--jobs", type=_jobs, default=None, help="concurrent requests")
        p.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
        p.set_defaults(func=func)

    p = sub.add_parser("update", parents=[common], help="follow imports to a newer revision",
                       description="Re-resolve imports: without --rev, follow the recorded rev (a branch moves, "
                       "a tag or commit stays put; no rev: the default branch); with --rev, switch to it. "
                       "Only what the cache lacks is downloaded.")
    p.add_argument("targets", nargs="+", metavar="TARGET.fastreg")
    p.add_argument("--rev", metavar="REV", help="switch to this branch, tag or commit")
    p.add_argument("--path", metavar="PATH", default=None,
                   help="follow the data to this path in the registry (after it was moved there)")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, help="concurrent requests")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("list", parents=[common], help="list a registry's files and tracked data",
                       description="List Git files and tracked data (marked *) of a registry, and entries "
                       "inside tracked directories; reads trees, never downloads data. One entry per line: "
                       "tracked mark (* or -), type, size, file count (- for a file), then the path, always "
                       "last (a directory's ends in /).")
    p.add_argument("url", metavar="URL")
    p.add_argument("path", metavar="PATH", nargs="?")
    p.add_argument("--rev", metavar="REV")
    p.add_argument("-R", "--recursive", action="store_true", help="list everything below, into tracked directories")
    p.add_argument("--tracked-only", action="store_true", help="only tracked data")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", parents=[common], help="verify that a remote (or the cache) is whole",
                       description="Check that everything the tracked data needs is on the remote: every tree "
                       "node, file record and index segment, every chunk named by a committed segment and inside "
                       "its pack. With --read-data (or a random --read-data-subset) packs are downloaded and every "
                       "chunk verified. Damage is recorded, so the next `fastreg push` of a project that has the "
                       "data puts it back. --cache checks the local cache's objects instead. Exit 0: whole; 3: "
                       "damage found (one line per problem, naming the object and the files it breaks).")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    p.add_argument("-r", "--remote", metavar="NAME", help="the remote (default: the project's default remote)")
    p.add_argument("-a", "--all-commits", action="store_true", help="also every version in the Git history")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--read-data", action="store_true", help="download and verify every pack")
    data.add_argument("--read-data-subset", type=_subset, metavar="P%|N",
                      help="download and verify a random subset of the packs: a percentage or a count")
    p.add_argument("--cache", action="store_true", help="check the local cache's objects instead of a remote")
    p.add_argument("--repair", action="store_true", help="with --cache: move damaged objects aside")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, help="concurrent requests")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("merge", parents=[common], help="resolve metafiles a Git merge left unmerged",
                       description="Merge again every metafile Git has unmerged (or those PATH names), from "
                       "the three versions in Git's index: files and folders added, deleted or modified on one "
                       "side merge by path, only a path changed two different ways is a conflict. --ours or "
                       "--theirs settles conflicts (all of them, or those under each PATH inside a tracked folder) "
                       "with that side's version, as Git's `checkout --ours/--theirs` means it (during a rebase "
                       "'ours' is the branch being rebased onto). Then `git add` the metafile. Exit 5 when "
                       "conflicts are left. Git runs the same merge by itself for `*.fastreg` (merge driver).")
    p.add_argument("paths", nargs="*", metavar="PATH", help="a metafile or tracked path, or a path inside one")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--ours", action="store_true", help="settle conflicts with our version")
    side.add_argument("--theirs", action="store_true", help="settle conflicts with their version")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("merge-driver", parents=[common], help="Git's merge driver for metafiles (run by Git)",
                       description="Run by Git (`.gitattributes`: `*.fastreg merge=fastreg`; every fastreg command "
                       "registers the command in the clone's Git config) with the ancestor's, our and their "
                       "version of a metafile; writes the merge over OURS. Exit 0: merged; 1: conflicts "
                       "(one line per path on stderr).")
    p.add_argument("base", metavar="BASE")
    p.add_argument("ours", metavar="OURS")
    p.add_argument("theirs", metavar="THEIRS")
    p.add_argument("merged", metavar="PATH")  # as Git gives it: never unquoted
    p.set_defaults(func=cmd_merge_driver)

    p = sub.add_parser("remove", parents=[common], help="stop tracking a path",
                       description="Remove the metafile of each TARGET and its line in the .gitignore beside "
                       "it. The data stays in the workspace (--outs deletes it too); the cache and remotes "
                       "are not touched (gc cleans them).")
    p.add_argument("targets", nargs="+", metavar="TARGET.fastreg")
    p.add_argument("--outs", action="store_true", help="also delete the data from the workspace")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("move", parents=[common], help="move tracked data with its metafile",
                       description="Move tracked data and its metafile to DST (into DST when it is a "
                       "directory) and fix the .gitignore lines. The digest is kept: nothing is hashed or "
                       "uploaded again.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.set_defaults(func=cmd_move)

    p = sub.add_parser("diff", parents=[common], help="show what changed in tracked data between versions",
                       usage="fastreg diff [A [B]] [TARGET...] [--json | --md]\n"
                             "       fastreg diff --repo URL A [B [PATH]] [--json | --md]",
                       description="Files added, deleted, modified and renamed (same content at a new path) "
                       "inside tracked data, from Git revision A (default HEAD) to revision B (default: the "
                       "workspace, as `fastreg add` would record it), with sizes and a summary. TARGETs limit it "
                       "to tracked paths or paths inside them. With --repo, between two revisions of a registry "
                       "by URL (B defaults to its default branch), without a project and without downloading "
                       "data. Trees are compared node by node: unchanged folders are never read.")
    p.add_argument("args", nargs="*", metavar="A B TARGET", help=argparse.SUPPRESS)
    p.add_argument("--repo", metavar="URL", help="diff a registry by URL instead of this project")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    fmt.add_argument("--md", action="store_true", help="a Markdown table (for a pull request)")
    p.set_defaults(func=cmd_diff)

    from fastreg.bench import DEFAULT_DURATION, DEFAULT_JOBS, DEFAULT_SIZES

    p = sub.add_parser(
        "bench", parents=[common], help="benchmark a storage backend the way fastreg uses it",
        description="Measure a remote with fastreg's own storage stack (retries included): PUT and GET "
        "throughput, requests/s and latency percentiles per object size and concurrency, time to first "
        "byte of ranged GETs, LIST rate, errors and retries; with --dataset, a real push and pull of a "
        "directory and where its time goes. Objects are written under a unique prefix and deleted at "
        "the end. A read-only remote (HTTP, read_only) gets the read tests only, on its existing packs.")
    p.add_argument("target", metavar="REMOTE_OR_URL",
                   help="a remote of this project, s3://BUCKET[/PREFIX], http(s)://HOST/PATH or a directory")
    p.add_argument("--sizes", default=DEFAULT_SIZES, metavar="LIST",
                   help=f"object sizes, comma-separated (default {DEFAULT_SIZES})")
    p.add_argument("-j", "--jobs", default=DEFAULT_JOBS, metavar="LIST",
                   help=f"concurrent requests to try, comma-separated (default {DEFAULT_JOBS})")
    p.add_argument("--duration", default=DEFAULT_DURATION, metavar="TIME",
                   help=f"time budget of the measurements, shared by all cells, e.g. 30s, 2m (default "
                   f"{DEFAULT_DURATION}); clean-up and --dataset come on top")
    p.add_argument("--dataset", metavar="PATH", help="also push and pull this directory through fastreg's pipeline")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (schema in docs/bench.md)")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency to a PNG (needs fastreg[plot])")
    p.add_argument("--keep", action="store_true", help="leave the objects written (their prefix is printed)")
    p.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint (overrides the remote's)")
    p.add_argument("--region", metavar="REGION", help="S3 region (overrides the remote's)")
    p.add_argument("--profile", metavar="PROFILE", help="AWS profile (overrides the remote's)")
    p.set_defaults(func=cmd_bench)
    return parser


#: Arguments that name paths: each may be given as Git quotes it ("a\nb.jpg"), as output shows it.
_PATH_ARGS = ("targets", "paths", "path", "src", "dst", "args", "out")


def _unquote_paths(args: argparse.Namespace) -> None:
    for name in _PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, unquote(value))
        elif isinstance(value, list):
            setattr(args, name, [unquote(v) if isinstance(v, str) else v for v in value])


def main(argv: Sequence[str] | None = None) -> int:
    verbose = False
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _unquote_paths(args)
        args.quiet = getattr(args, "quiet", False)
        args.verbose = verbose = getattr(args, "verbose", False)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        rc: int = args.func(args)
        return rc
    except FastregError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        from fastreg.errors import NO_SPACE

        if exc.errno not in NO_SPACE:  # a full disk (or quota) is no bug, wherever it was met
            return _internal(exc, verbose)
        if verbose:
            traceback.print_exc()
        print(f"error: no space left on the device while writing {one_line(str(exc.filename or ''))}; free space "
              "and run the command again", file=sys.stderr)
        return 1
    except Exception as exc:
        return _internal(exc, verbose)


def _internal(exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"error: internal error: {type(exc).__name__}: {one_line(str(exc))} (run with -v for details and "
          "report it)", file=sys.stderr)
    return 70



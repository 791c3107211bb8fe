"""Commands on the workspace: init, add, status, checkout, gc, merge, remove, move, diff."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

from fastreg.cli.args import duration, jobs, revision_flags, revisions_of
from fastreg.cli.output import checked_out, count, diff_summary, human, progress_bar, say
from fastreg.cli.project import find_project
from fastreg.errors import FastregError, UsageError
from fastreg.quoting import quote

if TYPE_CHECKING:
    from fastreg.repo.status import TargetStatus


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fastreg.repo import gitsetup
    from fastreg.repo.project import Project

    p, existed = Project.init(Path.cwd(), args.no_scm)
    no_scm = bool(p.config.get("core", {}).get("no_scm"))
    if not no_scm:
        gitsetup.ensure_attributes(p.root)
    hook = gitsetup.set_up(p)
    if hook.note:
        print(f"warning: the pre-push hook that uploads data on `git push` was not written: {hook.note}",
              file=sys.stderr)
    if existed:
        say(args, f"{p.dir} is a fastreg project already" + ("" if no_scm else "; its Git set-up is in place (the "
             "metafile merge driver and pre-push hook in this clone, .gitattributes: commit it)"))
        return 0
    say(args, f"Initialized fastreg project in {p.dir}")
    if not no_scm:
        say(args, "Commit .fastreg/config, .fastreg/.gitignore and .gitattributes to Git.")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from fastreg.repo import add

    project = find_project()
    with project.lock(), progress_bar(args, "add") as progress:
        results = add.add(project, args.targets, jobs=args.jobs, progress=progress, force=args.force,
                          prune=args.prune)
    for r in results:
        what = f"{count(r.meta.files, 'file')}, " if r.meta.kind == "dir" else ""
        verb = "Added" if r.new else "Updated" if r.changed else "Unchanged"
        if r.skipped and not args.quiet:
            shown = r.skipped if args.verbose else r.skipped[:3]
            more = f"; and {len(r.skipped) - len(shown)} more (-v lists all)" if len(r.skipped) > len(shown) else ""
            left = "1 entry that is" if len(r.skipped) == 1 else f"{len(r.skipped)} entries that are"
            print(f"warning: {r.target.rel}: left out {left} not a file or folder: "
                  + ", ".join(f"{p} ({why})" for p, why in shown) + more, file=sys.stderr)
        say(args, f"{verb} {r.target.rel}.fastreg ({what}{human(r.meta.size)})")
        if r.kept:
            say(args, f"    kept {count(r.kept, 'file')} never checked out here (not in the workspace); "
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
        say(args, "To track the changes with Git, run:\n    git add " + dashes + " ".join(typed))
    return 0


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

    project = find_project()
    if args.remote is not None:
        from fastreg.repo import remote_admin

        name, remote_status = remote_admin.status_remote(project, args.targets, args.remote or None,
                                                         revisions_of(args))
        behind = [rs for rs in remote_status if rs.behind]
        if args.json:
            print(json.dumps({"remote": name, "changed": bool(behind),
                              "targets": [rs.to_json() for rs in remote_status]}, indent=1))
        elif not args.quiet:
            flags = "".join(f" {f}" for f, on in (("--all-commits", args.all_commits),
                                                  ("--all-branches", args.all_branches),
                                                  ("--all-tags", args.all_tags)) if on)
            flags += "".join(f" --rev {r}" for r in args.rev)
            for rs in behind:
                missing = (f"{rs.missing_files} of {count(rs.total_files, 'file')} ({human(rs.missing_bytes)} in "
                           f"{count(rs.missing_chunks, 'chunk')} to upload)" if rs.missing_files else "")
                if rs.missing_trees:
                    missing += (", " if missing else "") + count(rs.missing_trees, "tree node")
                if rs.problem:
                    print(f"{rs.name}:\n    cannot be pushed from here: {rs.problem}")
                    continue
                print(f"{rs.name}:\n    not in remote {name}: {missing}; run `fastreg push{flags}`")
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
        print(json.dumps({"changed": dirty, "targets": [r.to_json(m) for r, m in zip(results, moved, strict=True)]},
                         indent=1))
    if not args.quiet:
        for e in status.git_exposure(project, [r.target for r in results if os.path.lexists(r.target.data)]):
            rel = quote(e.target.rel)
            if e.staged:
                print(f"warning: {rel}: {count(e.staged, 'file')} of tracked data in Git's index (a commit would "
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
        lines.append(f"unmerged: a Git merge left {count(len(r.conflicts), 'conflict')}")
        lines += [f"conflict: {c}" for c in r.conflicts[:limit]]
        if limit is not None and len(r.conflicts) > limit:
            lines.append(f"conflict: ... and {len(r.conflicts) - limit} more (-v lists all)")
        lines.append(unmerged_hint(r.target.rel, markers=r.meta is None))  # no meta: Git's conflict markers
    elif r.state == "deleted" and not r.in_cache:
        lines.append(f"deleted (data is missing, and not in the cache either; `fastreg pull {r.target.rel}` "
                     "restores it)")
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
        lines.append(f"{count(len(r.not_pulled), 'file')} not in the workspace (never pulled here; "
                     f"`fastreg pull {r.target.rel}` brings them)")
    if moved is not None and r.meta is not None and r.meta.source is not None:
        lines.append(f"import source {r.meta.source.rev or 'default branch'} moved to {moved[:10]}; "
                     f"run `fastreg update {r.target.rel}.fastreg`")
    if lines:
        print(f"{quote(r.target.rel)}:")
        for line in lines:
            print(f"    {line}")


def cmd_checkout(args: argparse.Namespace) -> int:
    from fastreg.repo import checkout

    project = find_project()
    with project.lock(), progress_bar(args, "checkout") as progress:
        res = checkout.checkout(project, args.targets, force=args.force, jobs=args.jobs, progress=progress)
    say(args, checked_out(res))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from fastreg.repo import gc

    if not (args.workspace or args.all_commits):
        raise UsageError("say what to keep: `fastreg gc --workspace` or `fastreg gc --all-commits`")
    project = find_project()
    with project.lock():
        if args.remote is not None:  # a remote that cannot be cleaned is refused before anything is deleted
            from fastreg.repo import remote_admin

            remote_admin.cleanable(project, args.remote or None)
        res = gc.gc(project, all_commits=args.all_commits, grace=args.grace, drop_unpushed=args.drop_unpushed)
        u = res.unpushed
        if u is not None and (u.files or u.trees):
            shown = ", ".join(u.targets[:3]) + (f" and {len(u.targets) - 3} more" if len(u.targets) > 3 else "")
            say(args, f"Kept {count(u.files, 'file')} and {count(u.trees, 'tree')} ({human(u.bytes)}) that "
                       f"committed versions of {shown} need: {u.why}, so this cache may hold their only copy; "
                       "`fastreg push --all-commits` uploads them, `fastreg gc -w --drop-unpushed` deletes them")
        say(args, f"Removed {count(res.removed_files, 'file')} and {count(res.removed_trees, 'tree')} "
                   f"({human(res.removed_bytes)}); kept {count(res.kept, 'object')}"
                   + (f", including what {count(res.other_projects, 'other project')} sharing the cache use"
                      if res.other_projects else "")
                   + (f"; left {count(res.kept_recent, 'recent object')} of the shared cache alone"
                      if res.kept_recent else ""))
        if args.remote is not None:
            from fastreg.repo import remote_admin

            metas = gc.referenced_metas(project, args.all_commits)
            outcome = remote_admin.gc_remote(project, metas, args.remote or None, args.grace)
            r = outcome.result
            say(args, f"Remote {outcome.remote}: deleted {count(r.packs_deleted, 'pack')}, rewrote "
                       f"{r.packs_rewritten}, deleted {count(r.objects_deleted, 'object')}, freed "
                       f"{human(r.bytes_freed)}"
                       + (f"; kept what {count(outcome.other_projects, 'other project')} pushed there refer to"
                          if outcome.other_projects else "")
                       + (f"; the grace period kept {count(r.kept_young, 'recent pack')} "
                          f"({human(r.kept_young_bytes)}) whatever they hold" if r.kept_young else ""))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from fastreg.errors import UnmergedError
    from fastreg.repo import merging

    project = find_project()
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
            say(args, f"Merged {meta_rel}: deleted; run `git rm {meta_rel}`")
        else:
            what = f"{count(o.meta.files, 'file')}, " if o.meta.kind == "dir" else ""
            say(args, f"Merged {meta_rel} ({what}{human(o.meta.size)}); run `git add {meta_rel}`, and "
                       f"`fastreg pull {o.target}` for the files this workspace lacks")
    if left:
        raise UnmergedError(f"{count(left, 'conflict')} left (listed above); take a side with `fastreg merge "
                            "--ours|--theirs [PATH...]`, or fix the data and `fastreg add`")
    return 0


def cmd_merge_driver(args: argparse.Namespace) -> int:
    from fastreg.repo import merging

    return merging.run_driver(args.base, args.ours, args.theirs, args.merged)


def cmd_remove(args: argparse.Namespace) -> int:
    from fastreg.repo.remove import remove

    project = find_project()
    with project.lock():
        removed = remove(project, args.targets, args.outs, args.force)
    for t in removed:
        say(args, f"Stopped tracking {t.rel}" + (" and deleted its data" if args.outs else " (its data stays)"))
    if removed:
        say(args, "To record it with Git, run:\n    git add -A " + " ".join(f"{t.rel}.fastreg" for t in removed)
             + " " + " ".join(sorted({os.path.join(os.path.dirname(t.rel), ".gitignore") for t in removed})))
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    from fastreg.repo.move import move

    project = find_project()
    with project.lock():
        m = move(project, args.src, args.dst)
    say(args, f"Moved {m.src.rel} -> {m.dst.rel}"
               + ("" if m.data_moved else " (metafile only: the data was not here)"))
    gitignores = sorted({os.path.join(os.path.dirname(t.rel), ".gitignore") for t in (m.src, m.dst)})
    say(args, f"To record it with Git, run:\n    git add -A {m.src.rel}.fastreg {m.dst.rel}.fastreg "
               + " ".join(gitignores))
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
        from fastreg.registry.ops import import_session
        from fastreg.repo import diff

        project = find_project()
        revs, targets = diff.revisions_and_targets(project, args.args)
        res = diff.project_diff(project, revs[0] if revs else None, revs[1] if len(revs) > 1 else None, targets,
                              imports=import_session)
    _print_diff(args, res)
    return 0


def _print_diff(args: argparse.Namespace, res: object) -> None:
    import json

    from fastreg.repo.diff import DiffResult

    assert isinstance(res, DiffResult)
    summary = res.summary()
    if args.json:
        print(json.dumps(res.to_json(), indent=1))
        return
    if args.quiet:
        return
    if args.md:
        print("| Status | Path | Size |\n|---|---|---|")
        for c in res.changes:
            path = f"{quote(c.old_path or '')} -> {quote(c.path)}" if c.kind == "renamed" else quote(c.path)
            size = f"{human(c.old_size)} -> {human(c.size)}" if c.kind == "modified" else human(c.size)
            cell = path.replace("|", "\\|")
            print(f"| {c.kind} | {cell} | {size} |")
    else:
        print(f"{res.a} -> {res.b}")
        for c in res.changes:
            path = f"{quote(c.old_path or '')} -> {quote(c.path)}" if c.kind == "renamed" else quote(c.path)
            print(f"{c.kind:9} {human(c.size).replace(' ', ''):>9}  {path}")
    print(diff_summary(summary))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Declare this group's commands on the subparsers `sub` (each with the `common` flags)."""
    _register_tracking(sub, common)
    _register_gc(sub, common)
    _register_merging(sub, common)
    _register_paths(sub, common)


def _register_tracking(sub: Any, common: argparse.ArgumentParser) -> None:
    """init, add, status, checkout: tracking data in the workspace."""
    p = sub.add_parser("init", parents=[common], help="make this Git work tree a fastreg project",
                       description="Create .fastreg/ (config and cache) in the current directory.")
    p.add_argument("--no-scm", action="store_true", help="allow a directory that is not in a Git work tree")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add", parents=[common], help="track files or directories",
                       description="Hash PATH (a file or a directory), store its content in the cache, "
                       "write PATH.fastreg and add PATH to the .gitignore beside it. Re-run after "
                       "changes to record the new version; unchanged files are not read again.")
    p.add_argument("targets", nargs="+", metavar="PATH")
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="hashing threads (default: cores)")
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
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="hashing threads (default: cores)")
    p.add_argument("--remote", "-r", nargs="?", const="", default=None, metavar="NAME",
                   help="show what is not in the remote yet (the default remote, or NAME)")
    revision_flags(p, "status --remote")
    p.add_argument("--json", action="store_true", help="the same facts as JSON, for scripts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("checkout", parents=[common], help="restore the workspace from the cache",
                       description="Make each tracked path match its metafile, from the local cache. "
                       "Files whose current content is in the cache are replaced freely; local changes "
                       "that exist nowhere else need --force to be discarded.")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    p.add_argument("-f", "--force", action="store_true", help="discard local changes that are not in the cache")
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="parallel file writes (default: cores)")
    p.set_defaults(func=cmd_checkout)


def _register_gc(sub: Any, common: argparse.ArgumentParser) -> None:
    """gc."""
    p = sub.add_parser("gc", parents=[common], help="remove cache objects no metafile refers to",
                       description="Delete cache objects that no metafile refers to: those in the "
                       "workspace (--workspace) or in any commit of any branch or tag (--all-commits). "
                       "--workspace still keeps what a commit of any branch or tag refers to and the default "
                       "remote does not hold (all of it when no remote is configured or it cannot be reached): "
                       "gc never deletes the last copy of a committed version unless --drop-unpushed. A "
                       "shared cache.dir keeps what every project using it refers to (projects register "
                       "in it when they run a command; entries of projects that are gone are pruned).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-w", "--workspace", action="store_true", help="keep what the workspace's metafiles use")
    scope.add_argument("-a", "--all-commits", action="store_true", help="keep what any Git commit's metafiles use")
    p.add_argument("-r", "--remote", metavar="NAME", nargs="?", const="", default=None,
                   help="also clean this remote (the default remote without NAME); objects younger than the "
                   "remote's gc_grace (default 3600 s) are left alone, so concurrent pushes are safe")
    p.add_argument("--drop-unpushed", action="store_true",
                   help="with --workspace: also delete objects of committed versions that the default remote "
                   "lacks (by default they are kept: this cache may hold their only copy)")
    p.add_argument("--grace", type=duration, metavar="DURATION", default=None,
                   help="leave objects younger than this alone, e.g. 10m, instead of the remote's gc_grace "
                   "(with -r) and the 1 h a shared cache.dir gets; 0 or `now`: none (only when no push to "
                   "the remote, and no add into the shared cache, is running)")
    p.set_defaults(func=cmd_gc)


def _register_merging(sub: Any, common: argparse.ArgumentParser) -> None:
    """merge and Git's merge driver."""
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


def _register_paths(sub: Any, common: argparse.ArgumentParser) -> None:
    """remove, move, diff."""
    p = sub.add_parser("remove", parents=[common], help="stop tracking a path",
                       description="Remove the metafile of each TARGET and its line in the .gitignore beside "
                       "it. The data stays in the workspace (--outs deletes it too); the cache and remotes "
                       "are not touched (gc cleans them).")
    p.add_argument("targets", nargs="+", metavar="TARGET.fastreg")
    p.add_argument("--outs", action="store_true", help="also delete the data from the workspace (refused when "
                   "local changes exist nowhere else, as checkout refuses)")
    p.add_argument("-f", "--force", action="store_true", help="with --outs: delete local changes too")
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

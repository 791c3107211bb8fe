"""`fastreg migrate`: convert a DVC project in place (dvc/migration.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fastreg.cli.args import jobs
from fastreg.cli.output import count, human, progress_bar, say, steady_malloc
from fastreg.errors import MissingDataError
from fastreg.quoting import quote


def cmd_migrate(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.dvc import migration as mig
    from fastreg.repo.project import Project

    root = mig.find_root(Path.cwd())
    if args.dry_run:
        res = mig.migrate(root, None, args.targets, args.from_remote, args.prefix, False, args.jobs)
        for p in res.outs:
            if p.skip is None:
                what = f"{p.out.kind}, {count(p.files, 'file')}" + (f", {human(p.out.size)}" if p.out.size else "")
                src = p.out.source
                how = f" as an import of {src.path} from {src.url} at {src.rev_lock[:10]}" if src else ""
                print(f"would migrate {quote(p.out.path)} ({what}) from {quote(p.dvcfile)}{how}")
            else:
                print(f"would keep {quote(p.out.path)} with DVC: {p.skip}")
        for name, url in res.remotes:
            print(f"would add the fastreg remote {name}: {url}")
        for note in res.notes:
            print(f"warning: {note}", file=sys.stderr)
        if not res.outs:
            print("nothing to migrate: no .dvc files here")
        return 0
    # The plan first (the DVC files and config parsed, the targets checked): what it refuses is
    # refused before anything is written (no .fastreg/ or .gitattributes left behind).
    mig.Migration(root, args.from_remote, args.prefix, args.jobs).plan(args.targets)
    project, existed = Project.init(root, no_scm=False)
    from fastreg.repo import gitsetup

    gitsetup.ensure_attributes(project.root)
    gitsetup.set_up(project)
    pushed = None
    with project.lock(), progress_bar(args, "migrate") as progress:
        res = mig.migrate(root, project, args.targets, args.from_remote, args.prefix, args.remove_dvc, args.jobs,
                          progress)
        if args.push and res.migrated:
            from fastreg.repo import push as push_mod

            pushed = push_mod.push(Project(root), [str(root / p.out.path) for p in res.migrated], None, args.jobs,
                                   progress)
    for name, url in res.remotes:
        say(args, f"Remote {name}: {url} (fastreg's layout, beside the DVC data)")
    for note in res.notes:
        print(f"warning: {note}", file=sys.stderr)
    for p in res.outs:
        if p.skip is None:
            say(args, f"Migrated {quote(p.dvcfile)} -> {quote(p.out.path)}.fastreg ({count(p.files, 'file')}, "
                       f"{human(p.size)})")
        elif not p.failed:
            say(args, f"Kept {quote(p.out.path)} with DVC: {p.skip}")
    if pushed is not None:
        say(args, f"Pushed {human(pushed.bytes)} to {pushed.remote}")
    if not res.outs:
        say(args, "Nothing to migrate: no .dvc files here")
    elif res.migrated:
        say(args, f"{count(len(res.migrated), 'out')} migrated: {count(res.files, 'file')}, {human(res.bytes)}; "
                   f"{res.verified} md5s verified; {human(res.saved)} saved by deduplication")
        names = sorted({f"{p.out.path}.fastreg" for p in res.migrated}
                       | {os.path.join(os.path.dirname(p.out.path), ".gitignore") for p in res.migrated}
                       | (set() if existed and not res.remotes else {".fastreg", ".gitattributes"}))
        typed = " ".join(quote(os.path.relpath(root / n)) for n in names)
        say(args, f"To record the migration in Git (the .dvc files are out of the index):\n    git add {typed}\n"
                   "    git commit -m 'Data tracked by fastreg'")
    failed = [p for p in res.outs if p.failed]
    for p in failed[:-1]:
        say(args, f"warning: {quote(p.out.path)} not migrated: {p.skip}")
    if failed:
        more = f" ({len(failed)} outs not migrated)" if len(failed) > 1 else ""
        raise MissingDataError(f"{failed[-1].out.path} not migrated: {failed[-1].skip}{more}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("migrate", parents=[common], help="convert a DVC project's .dvc outs into fastreg metafiles",
                       description="Run in a DVC project's Git work tree: each .dvc out becomes PATH.fastreg (made a "
                       "fastreg project if it is not one). The bytes come from the workspace when they match the "
                       "recorded md5, else from the DVC cache, else (--from-remote) from the DVC remote; each file is "
                       "verified against its md5 before it is stored. .dvc/config remotes become fastreg remotes "
                       "of the same names, beside the DVC data (or at --prefix). The .dvc files leave the index; "
                       "pipeline outs (dvc.lock) stay DVC's. Safe to rerun: a second run does nothing, a killed "
                       "run finishes.")
    p.add_argument("targets", nargs="*", metavar="TARGET.dvc", help="only these .dvc files (default: all)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--from-remote", action="store_true",
                   help="read what neither the workspace nor the DVC cache has from the DVC remote")
    p.add_argument("--push", action="store_true", help="push the migrated data to the fastreg default remote")
    p.add_argument("--prefix", metavar="URL", default=None,
                   help="where the default remote's fastreg data goes (default: beside the DVC data, URL-fastreg)")
    p.add_argument("--remove-dvc", action="store_true",
                   help="also remove .dvc/ and .dvcignore once DVC owns nothing more here")
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="threads and concurrent requests")
    p.set_defaults(func=cmd_migrate)

"""Commands of a data registry's consumers: get, import, update, list."""

from __future__ import annotations

import argparse
from typing import Any

from fastreg.cli.args import jobs
from fastreg.cli.output import count, human, progress_bar, say, steady_malloc
from fastreg.cli.project import find_project
from fastreg.quoting import quote


def cmd_get(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.registry import ops as reg

    with progress_bar(args, "get") as progress:
        res = reg.get(args.url, args.path, args.out, args.rev, args.jobs, progress, force=args.force)
    say(args, f"Got {args.path} -> {res.out} ({count(res.files, 'file')}, {human(res.size)}; downloaded "
               f"{human(res.downloaded)}) at {res.commit[:10]}")
    return 0


def gitignore_beside(target: str) -> str:
    """The .gitignore that holds a target's line (in the folder beside its metafile)."""
    import posixpath

    return posixpath.join(posixpath.dirname(target), ".gitignore")


def cmd_import(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.registry import ops as reg

    project = find_project()
    with project.lock(), progress_bar(args, "import") as progress:
        res = reg.import_(project, args.url, args.path, args.out, args.rev, args.force, args.jobs, progress)
    say(args, f"Imported {args.path} -> {res.target} ({count(res.files, 'file')}, {human(res.size)}; downloaded "
               f"{human(res.downloaded)}) at {res.commit[:10]}\nTo track it with Git, run:\n"
               f"    git add {res.target}.fastreg {gitignore_beside(res.target)}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.registry import ops as reg

    project = find_project()
    with project.lock(), progress_bar(args, "update") as progress:
        for target in args.targets:
            res = reg.update(project, target, args.rev, args.jobs, progress, args.path)
            if res.changed:
                say(args, f"Updated {res.target} to {res.rev or 'the default branch'} ({res.commit[:10]}): "
                           f"{count(res.files, 'file')}, {human(res.size)}; downloaded {human(res.downloaded)}")
            else:
                say(args, f"{res.target} is up to date ({res.rev or 'the default branch'} at {res.commit[:10]})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from fastreg.registry import ops as reg

    unreadable: list[str] = []
    entries = reg.list_(args.url, args.path, args.rev, args.recursive, args.tracked_only, unreadable)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=1))
    else:
        _print_entries(entries)
    if unreadable:
        from fastreg.errors import StorageError

        raise StorageError(f"{len(unreadable)} tracked folder{'s' if len(unreadable) != 1 else ''} could not be "
                           f"listed inside (the rest is above): {' | '.join(unreadable)}")
    return 0


def _print_entries(entries: list[Any]) -> None:
    """The path is the last field of every line (as `ls -l`, `git ls-tree`): `awk '{print $NF}'`
    gives paths. Columns: mark (`*` tracked data, `i` tracked data imported from another registry,
    `-` a Git file), type, size, file count ("-" for none)."""
    for e in entries:
        mark = ("i" if e.source is not None else "*") if e.tracked else "-"
        files = str(e.files) if e.files is not None else "-"
        print(f"{mark} {e.type:4} {human(e.size).replace(' ', ''):>9} {files:>8}  "
              f"{quote(e.path + ('/' if e.type == 'dir' else ''))}")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Declare this group's commands on the subparsers `sub` (each with the `common` flags)."""
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
        p.add_argument("-j", "--jobs", type=jobs, default=None, help="concurrent requests")
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
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="concurrent requests")
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

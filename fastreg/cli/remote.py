"""Commands that move data to and from a project's remotes, and look after them: remote, push, fetch, pull, check."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from fastreg.cli.args import Parser, duration, jobs, revision_flags, revisions_of, subset
from fastreg.cli.output import checked_out, count, human, progress_bar, say, steady_malloc
from fastreg.cli.project import find_project
from fastreg.errors import UsageError

if TYPE_CHECKING:
    from fastreg.repo.push import SyncResult


def cmd_remote(args: argparse.Namespace) -> int:
    from fastreg.repo import config as cfg
    from fastreg.repo import remotes

    project = find_project()
    if args.remote_command == "add":
        remotes.add(project.dir, args.name, args.url, args.default, args.local, args.force)
        say(args, f"Added remote {args.name} -> {args.url}" + (" (default)" if args.default else ""))
    elif args.remote_command == "modify":
        if args.value is None and not args.unset:
            raise UsageError("give a VALUE (or --unset)")
        remotes.modify(project.dir, args.name, args.option, args.value or "", args.local, args.unset)
    elif args.remote_command == "remove":
        remotes.remove(project.dir, args.name, args.local)
    elif args.remote_command == "default":
        remotes.set_default(project.dir, args.name, args.local)
    elif args.remote_command == "projects":
        import time

        from fastreg.repo import remote_admin

        name, found = remote_admin.remote_projects(project, args.name)
        for p in found:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.pushed))
            print(f"{p.id}  {when}  {count(p.roots, 'root'):>10}  {p.where}" + ("  (this clone)" if p.this else ""))
        if not found:
            say(args, f"No project has pushed a snapshot to {name} yet.")
    elif args.remote_command == "retire":
        from fastreg.repo import remote_admin

        name, retired = remote_admin.retire(project, args.name, args.ids, args.older_than)
        say(args, f"Retired {count(len(retired), 'project')} on {name}"
             + (f": {' '.join(retired)}" if retired else "")
             + "; the next `fastreg gc -r` frees what only they referred to")
    else:
        doc = cfg.merged(project.dir)
        default = remotes.default_name(doc)
        local = cfg.read_toml(project.dir / "config.local").get("remote", {})
        for name, remote in sorted(remotes.all_remotes(doc).items()):
            overridden = local.get(name, {}) if isinstance(local.get(name), dict) else {}

            def shown(key: str, value: object, overridden: dict[str, object] = overridden) -> str:
                value = "(secret)" if key in remotes.SECRET_OPTIONS else value  # never printed
                return f"{key}={value}" + (" (config.local)" if args.verbose and key in overridden else "")

            extra = "".join(" " + shown(k, v) for k, v in sorted(remote.options.items()))
            url = remote.url + (" (config.local)" if args.verbose and "url" in overridden else "")
            print(f"{name}\t{url}{extra}" + ("\t(default)" if name == default else ""))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.repo import push as push_mod

    project = find_project()
    with project.lock(), progress_bar(args, "push") as progress:
        res = push_mod.push(project, args.targets, args.remote, args.jobs, progress, revisions_of(args))
    if res.packs:
        say(args, f"Pushed {human(res.bytes)} in {count(res.packs, 'pack')} to {res.remote} "
                   f"({count(res.requests, 'request')})")
    elif res.remote:
        say(args, f"Everything is already in {res.remote} ({count(res.requests, 'request')})")
    if res.repaired:
        say(args, f"Repaired {count(res.repaired, 'damaged pack')} that `fastreg check` found: their chunks are "
                   "in new packs, the damaged ones withdrawn from the index")
    if res.imports:
        say(args, f"Skipped {count(res.imports, 'import')}: imported data is pushed by its registry")
    if res.failed:
        from fastreg.errors import IncompletePushError

        raise IncompletePushError(f"{count(len(res.failed), 'target')} could not be pushed (the others were): "
                                  + " | ".join(res.failed))
    return 0


def _fetched(args: argparse.Namespace, res: SyncResult) -> None:
    say(args, f"Fetched {count(res.files, 'file')} ({human(res.bytes)}) from {res.remote}"
               + (f"; {res.skipped} {'was' if res.skipped == 1 else 'were'} in the cache already"
                  if res.skipped else ""))


def cmd_fetch(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.registry.ops import import_session
    from fastreg.repo import pull as pull_mod

    project = find_project()
    with project.lock(), progress_bar(args, "fetch") as progress:
        res, _ = pull_mod.fetch(project, args.targets, args.remote, args.jobs, progress, imports=import_session,
                                revisions=revisions_of(args))
    _fetched(args, res)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    steady_malloc()
    from fastreg.registry.ops import import_session
    from fastreg.repo import pull as pull_mod

    project = find_project()
    with project.lock(), progress_bar(args, "pull") as progress:
        fetched, res = pull_mod.pull(project, args.targets, args.remote, args.jobs, args.force, progress,
                                 imports=import_session)
    _fetched(args, fetched)
    say(args, checked_out(res))
    return 0


def cmd_pre_push(args: argparse.Namespace) -> int:
    """Git's pre-push hook (repo/prepush.py): exit 0 lets the `git push` go on."""
    import sys

    from fastreg.repo import prepush

    project = find_project()
    lines = sys.stdin.read().splitlines()
    with project.lock():
        out = prepush.pre_push(project, args.remote_name, lines)
    if out.packs:
        print(f"fastreg: uploaded {human(out.bytes)} in {count(out.packs, 'pack')} to {out.remote} for the "
              f"{count(out.versions, 'version')} being pushed", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when everything checked is whole, 3 when something is damaged or missing."""
    import json

    from fastreg.repo import check

    project = find_project()
    if args.repair and not args.cache:
        raise UsageError("--repair goes with --cache (a remote is repaired by `fastreg push`)")
    if args.cache:
        with project.lock():
            cres = check.check_cache(project, args.repair)
        problems = cres.problems
        doc = cres.to_json(str(project.cache.root))
        head = (f"Checked the cache {project.cache.root}: {count(cres.files, 'file')}, "
                f"{count(cres.trees, 'tree node')} ({human(cres.bytes_read)} read)")
    else:
        read: float | int | bool | None = (True if args.read_data else
                                           args.read_data_subset if args.read_data_subset is not None else False)
        name, rep = check.check_remote(project, args.targets, args.remote, args.all_commits, read, args.jobs)
        problems = rep.problems
        doc = rep.to_json(name)
        head = (f"Checked remote {name}: {count(rep.segments, 'index segment')}, {count(rep.trees, 'tree node')}, "
                f"{count(rep.files, 'file')} ({count(rep.chunks, 'chunk')})"
                + (f"; read {count(rep.packs_read, 'pack')} ({human(rep.bytes_read)})" if read is not False else ""))
    if args.json:
        print(json.dumps(doc, indent=1))
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
            print(f"{count(len(problems), 'problem')} ({', '.join(kinds)})"
                  + ("; moved aside: the next `fastreg pull` or `fastreg add` stores them again" if args.repair
                     else "; `fastreg check --cache --repair` moves them aside"))
        else:
            kinds = sorted({p.kind for p in problems})
            print(f"{count(len(problems), 'problem')} ({', '.join(kinds)}); recorded: the next `fastreg push` "
                  "from a project that has the data puts it back")
    return 3 if problems else 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Declare this group's commands on the subparsers `sub` (each with the `common` flags)."""
    _register_remote(sub, common)
    _register_sync(sub, common)
    _register_checks(sub, common)


def _register_remote(sub: Any, common: argparse.ArgumentParser) -> None:
    """remote and its subcommands: where the bytes are stored."""
    p = sub.add_parser("remote", parents=[common], help="configure remotes (where the bytes are stored)",
                       description="Remotes are a local directory, s3://BUCKET/PREFIX (any S3-compatible "
                       "service) or http(s)://HOST/PATH (read-only). They are recorded in .fastreg/config, "
                       "which is committed, so consumers of the registry find the default remote by themselves.")
    rsub = p.add_subparsers(dest="remote_command", metavar="ACTION", parser_class=Parser, required=True)
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
    rp.add_argument("--older-than", type=duration, metavar="DURATION", default=None,
                    help="also every project whose latest push is older than this, e.g. 90d")
    rp = rsub.add_parser("remove", parents=[common], help="remove a remote")
    rp.add_argument("--local", action="store_true", help="edit .fastreg/config.local")
    rp.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remote)


def _register_sync(sub: Any, common: argparse.ArgumentParser) -> None:
    """push, fetch, pull."""
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
        p.add_argument("-j", "--jobs", type=jobs, default=None, help="concurrent requests")
        if name != "pull":
            revision_flags(p, "push" if name == "push" else "fetch")
        if name == "pull":
            p.add_argument("-f", "--force", action="store_true", help="discard local changes that are not in the cache")
        p.set_defaults(func=func)


def _register_checks(sub: Any, common: argparse.ArgumentParser) -> None:
    """Git's pre-push hook and check."""
    p = sub.add_parser("pre-push", parents=[common], help="Git's pre-push hook (run by Git)",
                       description="Run by Git before a `git push` (the hook .git/hooks/pre-push, which every "
                       "fastreg command writes in a clone that lacks it). Reads the refs being pushed on stdin; "
                       "by core.pre_push in .fastreg/config: `push` (default) uploads to the default remote the "
                       "data the pushed commits' metafiles need and it lacks; `check` refuses the git push when "
                       "data is missing there; `off` does nothing. Exit 0 lets the git push go on.")
    p.add_argument("remote_name", metavar="REMOTE")
    p.add_argument("url", metavar="URL", nargs="?")
    p.set_defaults(func=cmd_pre_push)

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
    data.add_argument("--read-data-subset", type=subset, metavar="P%|N",
                      help="download and verify a random subset of the packs: a percentage or a count")
    p.add_argument("--cache", action="store_true", help="check the local cache's objects instead of a remote")
    p.add_argument("--repair", action="store_true", help="with --cache: move damaged objects aside")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-j", "--jobs", type=jobs, default=None, help="concurrent requests")
    p.set_defaults(func=cmd_check)

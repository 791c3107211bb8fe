"""`fastreg ui`: a local, read-only web view of a registry (fastreg/ui/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastreg.cli.output import say


def _target(arg: str | None) -> tuple[str, Any, str]:
    """(URL the readers open, the project or None, the URL the copied commands name)."""
    from fastreg.git_cli import run
    from fastreg.repo.project import Project

    if arg is None or ("://" not in arg and Path(arg).is_dir() and (Path(arg) / ".fastreg").is_dir()):
        project = Project.find(Path(arg) if arg else None)
        share = str(project.root)
        origin = run(["remote", "get-url", "origin"], cwd=project.root, check=False)
        if origin.returncode == 0 and origin.stdout.strip():
            share = origin.stdout.decode(errors="replace").strip()  # what a teammate would clone
        return str(project.root), project, share
    return arg, None, arg


def cmd_ui(args: argparse.Namespace) -> int:
    import asyncio
    from urllib.parse import urlencode

    from fastreg.errors import UsageError
    from fastreg.ui import thumbs
    from fastreg.ui.model import Registry, web_rev
    from fastreg.ui.server import LOOPBACK, serve

    url, project, share = _target(args.target)
    if args.rev is not None:
        web_rev(args.rev)
    registry = Registry(url, project, share)
    registry.commit_of(args.rev)  # reachable, and the revision is there: fail now, not on the first page
    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port {args.port}: give 0 to 65535")
    if not thumbs.available():
        print(f"note: {thumbs.HINT}", file=sys.stderr)
    start = "/" if args.rev is None else "/browse/?" + urlencode({"rev": args.rev})

    def ready(base: str) -> None:
        if args.host not in LOOPBACK:  # said once it listens: a --host it cannot use is the error alone
            print(f"warning: serving on {args.host}: anyone who can reach it can read this registry "
                  "(no authentication)", file=sys.stderr)
        print(f"fastreg ui: {share} at {base} (Ctrl-C stops it)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(base.rstrip("/") + start)

    try:
        asyncio.run(serve(registry, args.host, args.port, ready))
    except KeyboardInterrupt:
        say(args, "fastreg ui: stopped")
    finally:
        registry.close()
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Declare this group's commands on the subparsers `sub` (each with the `common` flags)."""
    p = sub.add_parser("ui", parents=[common], help="browse a registry's versions, folders, images and diffs",
                       description="Serve a read-only web view of a registry: its versions (tags, branches, the "
                       "commits that changed tracked data), folders, images and diffs, read from trees and "
                       "ranged reads, nothing pulled. TARGET: a registry URL (anything `git clone` takes) or a "
                       "project folder (default: the project in the current directory, with its workspace "
                       "status). Pages work without JavaScript; the same data is JSON under /api/ (see "
                       "docs/cli.md). Image previews need Pillow (pip install 'fastreg[ui]').")
    p.add_argument("target", metavar="URL|PATH", nargs="?", default=None)
    p.add_argument("--rev", metavar="REV", help="the revision to open first (default: the default branch)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; another one serves without authentication)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0: any free one)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.set_defaults(func=cmd_ui)

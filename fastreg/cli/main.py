"""The command line's entry: the parser (each verb group declares its commands in its own module
beside their handlers: workspace, remote, registry, migrate, ui, bench), and the one place an error becomes
`error: ...` on stderr and an exit code (the table in docs/cli.md).

Imports of heavy modules happen inside the command functions, so `fastreg status` on a large
workspace does not pay for what it does not use."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from fastreg import __version__
from fastreg.cli.args import Parser
from fastreg.errors import FastregError, one_line
from fastreg.quoting import unquote


def build_parser() -> argparse.ArgumentParser:
    from fastreg.cli import bench, migrate, registry, remote, ui, workspace

    common = Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="more detail (a traceback on internal errors)")
    parser = Parser(
        prog="fastreg",
        description="fastreg: a data registry. Version datasets in Git as small metafiles; "
        "keep the bytes in a content-addressed cache and object storage.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fastreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in (workspace, remote, registry, migrate, ui, bench):
        group.register(sub, common)
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
        if not verbose:
            _quiet_libraries()
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


def _quiet_libraries() -> None:
    """What a failing transport's libraries log on their way down (asyncio's "socket.send() raised
    exception." for each write to a dropped connection, asyncssh's notes) is not for the user: the
    failure is the one `error:` line. With -v they are printed."""
    import logging

    for name in ("asyncio", "asyncssh"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _internal(exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"error: internal error: {type(exc).__name__}: {one_line(str(exc))} (run with -v for details and "
          "report it)", file=sys.stderr)
    return 70

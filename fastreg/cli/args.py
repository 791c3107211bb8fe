"""What the verb modules share to declare their arguments: the parser class whose usage errors
are one `error:` line (exit 2), the value types (jobs, durations, subsets) and the revision flags of
push, fetch and status --remote."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, NoReturn

from fastreg.errors import UsageError

if TYPE_CHECKING:
    from fastreg.repo.history import Revisions


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as one `error: ...` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid jobs count {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("jobs must be at least 1")
    return n


def revision_flags(p: argparse.ArgumentParser, verb: str) -> None:
    """--all-commits, --all-branches, --all-tags, --rev: versions in the Git history beyond the
    workspace's (push, fetch, status --remote)."""
    what = {"push": "also upload", "fetch": "also download"}.get(verb, "also count")
    p.add_argument("-a", "--all-commits", action="store_true",
                   help=f"{what} every version any commit of any branch or tag refers to")
    p.add_argument("--all-branches", action="store_true", help=f"{what} the versions at the tip of every branch")
    p.add_argument("-T", "--all-tags", action="store_true", help=f"{what} the versions every tag points to")
    p.add_argument("--rev", action="append", default=[], metavar="REV",
                   help=f"{what} the versions at this commit, branch or tag (repeatable)")


def revisions_of(args: argparse.Namespace) -> Revisions:
    from fastreg.repo.history import Revisions

    return Revisions(getattr(args, "all_commits", False), getattr(args, "all_branches", False),
                     getattr(args, "all_tags", False), tuple(getattr(args, "rev", ()) or ()))


def duration(text: str) -> float:
    """--grace, --older-than: seconds, or with a unit (30s, 10m, 2h, 1d); 0 or `now` for none."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if text.strip().lower() == "now":
        return 0.0
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 0, now, 90s, 30m, 2h, 1d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def subset(text: str) -> float | int:
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

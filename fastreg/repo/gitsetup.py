"""A clone's Git integration: what makes Git hand metafiles to fastreg, set up per clone.

- `.gitattributes` (committed, written by `fastreg init`): `*.fastreg merge=fastreg` and
  `.gitignore merge=union`;
- the merge driver's command (`merge.fastreg.*` in `.git/config`, never shared);
- the pre-push hook (`.git/hooks/pre-push`, never shared), which runs `fastreg pre-push`
  (repo/prepush.py) before each `git push`.

The last two live in the clone, not in the repository, so the CLI sets them up in every clone it
finds itself in (`set_up`: two file reads when they are in place, no git process). Both name this
interpreter (`sys.executable -m fastreg`), so a virtualenv that is not on PATH works and one that
moved is followed. Nothing here fails a command: a clone whose config cannot be written keeps
working, and the messages that need the driver say what to run. A pre-push hook of the user's
own, or a `core.hooksPath` (set by the user or a tool such as husky), is never overwritten:
`fastreg init` prints the line to add there instead."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from fastreg import git_cli as git
from fastreg.errors import FastregError
from fastreg.repo.project import Project


def _git_dir(root: Path) -> Path | None:
    """The clone's .git folder without running git (a linked worktree or submodule: None)."""
    for d in (root, *root.parents):
        g = d / ".git"
        if g.is_dir():
            return g
        if g.exists():
            return None
    return None


ATTRIBUTES = ("*.fastreg merge=fastreg", ".gitignore merge=union")
_ATTR_HEADER = "# fastreg: metafiles merge by path, .gitignore lines from both sides are kept\n"
DRIVER_NAME = "fastreg metafile merge (by path)"


def driver_command() -> str:
    """The command Git runs: this interpreter, so a virtualenv that is not on PATH still works
    (registration follows it when it moves: every command checks)."""
    return f"{shlex.quote(sys.executable)} -m fastreg merge-driver %O %A %B %P"


def ensure_driver(project: Project) -> bool:
    """Register the merge driver in this clone's Git config if it is not there (or names another
    interpreter). True when it was registered now. Never fails a command: a clone whose config
    cannot be written keeps working, and the unmerged-metafile error says what to run."""
    if project.config.get("core", {}).get("no_scm"):
        return False
    want = driver_command()
    git_dir = _git_dir(project.root)
    cfg = git_dir / "config" if git_dir is not None else None
    if cfg is not None:
        try:
            if f"driver = {want}\n" in cfg.read_text(errors="replace"):
                return False
        except OSError:
            pass
    try:
        git.run(["config", "merge.fastreg.name", DRIVER_NAME], cwd=project.root)
        git.run(["config", "merge.fastreg.driver", want], cwd=project.root)
    except FastregError:
        return False
    return True


def ensure_attributes(root: Path) -> bool:
    """The .gitattributes lines at the project's root (added to what is there). True if written."""
    path = root / ".gitattributes"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    have = {line.strip() for line in text.splitlines()}
    missing = [a for a in ATTRIBUTES if a not in have]
    if not missing:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    Project.write_text_atomic(path, text + (_ATTR_HEADER if _ATTR_HEADER.strip() not in have else "")
                              + "".join(a + "\n" for a in missing))
    return True


MARKER = "# fastreg pre-push hook"


def hook_text() -> str:
    py = shlex.quote(sys.executable)
    return (f"#!/bin/sh\n{MARKER}: uploads the data of the commits being pushed (core.pre_push in "
            f".fastreg/config: push, check or off). Rewritten by fastreg; put your own hook elsewhere.\n"
            f"if [ ! -x {py} ]; then\n"
            f"  echo 'error: fastreg pre-push hook: {sys.executable} is gone; run any fastreg command in this "
            f"clone to update the hook (or `git push --no-verify`)' >&2\n  exit 1\nfi\n"
            f"exec {py} -m fastreg pre-push \"$@\"\n")


def hook_line() -> str:
    """What to add to a pre-push hook of one's own."""
    return f"{shlex.quote(sys.executable)} -m fastreg pre-push \"$@\" || exit 1"


@dataclass(frozen=True, slots=True)
class HookState:
    installed: bool
    note: str = ""  # why not: a hook of the user's, or core.hooksPath


def ensure_hook(project: Project) -> HookState:
    """Write the pre-push hook if this clone lacks it (or it names another interpreter). Never
    fails a command and never replaces a hook that is not fastreg's."""
    if project.config.get("core", {}).get("no_scm"):
        return HookState(False)
    git_dir = _git_dir(project.root)
    hooks = git_dir / "hooks" if git_dir is not None else None
    if hooks is None:
        return HookState(False, "not a plain Git clone (a worktree or submodule): no hook written")
    path = hooks / "pre-push"
    want = hook_text()
    try:
        have = path.read_text(errors="replace")
    except FileNotFoundError:
        have = None
    except OSError:
        return HookState(False)
    if have == want:
        return HookState(True)
    if have is not None and MARKER not in have:
        return HookState(False, f"{path} is a hook of your own: add this line to it: {hook_line()}")
    try:
        custom = git.run(["config", "--get", "core.hooksPath"], cwd=project.root, check=False).stdout.strip()
    except FastregError:
        return HookState(False)
    if custom:
        return HookState(False, f"core.hooksPath is set ({custom.decode(errors='replace')}): add this line to "
                                f"the pre-push hook there: {hook_line()}")
    try:
        hooks.mkdir(exist_ok=True)
        Project.write_text_atomic(path, want)
        os.chmod(path, 0o755)
    except OSError:
        return HookState(False)
    return HookState(True)



def set_up(project: Project) -> HookState:
    """The per-clone part (merge driver, pre-push hook), where it is missing: every command that
    works in a project calls it. Returns what became of the hook (init reports a note)."""
    if project.config.get("core", {}).get("no_scm"):
        return HookState(False)
    ensure_driver(project)
    return ensure_hook(project)

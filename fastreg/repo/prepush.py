"""A bare `git push` that cannot publish versions whose data is nowhere: what Git's pre-push hook
(written per clone by repo/gitsetup.py) runs, `fastreg pre-push REMOTE [URL]`.

Git runs it with the remote and, on stdin, one line per ref it is about to push; it looks at the
metafiles those commits bring that the Git remote does not have yet and, by the setting
`core.pre_push` (.fastreg/config or config.local):

- "push" (the default): uploads what they need and the project's default remote lacks (as
  `fastreg push` would; nothing to upload costs a listing), then lets the `git push` go on;
- "check": refuses the `git push` (one line naming `fastreg push`) when the remote lacks data;
- "off": does nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastreg import git_cli as git
from fastreg.errors import ConfigError, IncompletePushError
from fastreg.repo.project import Project

MODES = ("push", "check", "off")
ZERO = "0" * 40


def mode_of(project: Project) -> str:
    mode = project.config.get("core", {}).get("pre_push", "push")
    if mode not in MODES:
        raise ConfigError(f"core.pre_push = {mode!r} is invalid: use one of {', '.join(MODES)}")
    return str(mode)


def pushed_ranges(git_remote: str, lines: Iterable[str]) -> list[str] | None:
    """The `git rev-list` arguments for the commits a push sends that the Git remote lacks, from
    the lines Git writes to the hook; None when nothing is sent (only deletions)."""
    tips, known = [], []
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _, local_sha, _, remote_sha = parts
        if local_sha != ZERO:
            tips.append(local_sha)
        if remote_sha != ZERO:
            known.append(remote_sha)
    if not tips:
        return None
    return [*tips, "--not", *known, f"--remotes={git_remote}"]


@dataclass(frozen=True, slots=True)
class PrePushOutcome:
    versions: int  # versions (metafile digests) the pushed commits bring
    remote: str = ""
    bytes: int = 0
    packs: int = 0


def pre_push(project: Project, git_remote: str, lines: Iterable[str]) -> PrePushOutcome:
    """What the hook does (see the module's doc). Raises to refuse the `git push`."""
    from fastreg.repo.history import versions_in

    mode = mode_of(project)
    if mode == "off":
        return PrePushOutcome(0)
    lines = list(lines)
    args = pushed_ranges(git_remote, lines)
    if args is None:
        return PrePushOutcome(0)
    known = [a for a in args if len(a) == 40 and a != ZERO]
    # A remote sha this clone does not have (someone else pushed since the last fetch) cannot be
    # excluded by rev-list: leave it out (more is checked, never less).
    args = [a for a in args if a not in known or git.commit_of(project.root, a) is not None]
    selected = [s for s in versions_in(project, args, []) if s.meta.source is None]  # imports: their registry's
    if not selected:
        return PrePushOutcome(0)  # a push of code alone: no network, not even the transfer layer imported
    from fastreg.repo import push as push_mod
    from fastreg.repo.remotes import default_name

    if default_name(project.config) is None:
        raise IncompletePushError(
            f"the commits being pushed refer to {len(selected)} data version(s) ({selected[0].target.rel}) and this "
            "project has no default remote to hold them: add one with `fastreg remote add -d NAME URL`, or set "
            "pre_push = \"off\" under [core] in .fastreg/config (or `git push --no-verify` once)")

    if mode == "check":
        lacking = push_mod.lacking_of(project, selected)
        behind = [f"{rs.name}" for rs in lacking[1] if rs.behind]
        if behind:
            raise IncompletePushError(
                f"the commits being pushed refer to data that remote {lacking[0]!r} lacks ({', '.join(behind[:3])}"
                + (f" and {len(behind) - 3} more" if len(behind) > 3 else "")
                + "): run `fastreg push --all-commits` first (core.pre_push = \"check\")")
        return PrePushOutcome(len(selected), lacking[0])
    res = push_mod.push_selected(project, selected, None, None, None, everything=False)
    if res.failed:
        raise IncompletePushError(f"git push stopped: {len(res.failed)} of the versions being pushed cannot be "
                                  "uploaded to the data remote: " + " | ".join(res.failed))
    return PrePushOutcome(len(selected), res.remote, res.bytes, res.packs)

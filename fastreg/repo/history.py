"""Versions committed in the project's Git history: which commits a command covers (--all-commits,
--all-branches, --all-tags, --rev, or the commits a `git push` sends) and the metafiles they hold.

One `git rev-list --objects` lists every object of those commits once, with a path it has; one
`git cat-file --batch` reads the metafile blobs among them. A version committed at several paths
or in several commits is read once."""

from __future__ import annotations

from dataclasses import dataclass

from fastreg import git_cli as git
from fastreg.errors import MetafileError, UsageError
from fastreg.objects import metafile
from fastreg.repo.project import FASTREG_DIR, Project
from fastreg.repo.workspace import Selected


@dataclass(frozen=True, slots=True)
class Revisions:
    """Which commits a command covers beyond the workspace."""

    all_commits: bool = False
    all_branches: bool = False
    all_tags: bool = False
    revs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.all_commits or self.all_branches or self.all_tags or bool(self.revs)

    def rev_list_args(self, project: Project) -> list[str]:
        """The `git rev-list` arguments naming those commits (each --rev checked: an unknown
        revision is a usage error)."""
        if self.all_commits:
            return ["--all"]
        args = ["--no-walk"]
        if self.all_branches:
            args.append("--branches")
        if self.all_tags:
            args.append("--tags")
        for rev in self.revs:
            commit = git.commit_of(project.root, rev)
            if commit is None:
                raise UsageError(f"--rev {rev}: not a revision of this project (a branch, tag or commit)")
            args.append(commit)
        return args


@dataclass(frozen=True, slots=True)
class Committed:
    rel: str  # the target's path in the project (one path it was committed at)
    blob: str  # the metafile's Git blob
    meta: metafile.Metafile


def committed_metafiles(project: Project, rev_list_args: list[str]) -> list[Committed]:
    """Every metafile version in the commits `rev_list_args` names (objects reachable from them),
    each blob once. A broken metafile in history (or a folder named *.fastreg) is left out: it
    protects and publishes nothing."""
    out = git.run(["rev-list", "--objects", *rev_list_args], cwd=project.root,
                  what="listing the Git history").stdout
    blobs: dict[str, str] = {}  # metafile blob sha -> a path it appeared at
    suffix = metafile.METAFILE_SUFFIX.encode()
    for line in out.splitlines():
        object_id, _, path = line.partition(b" ")
        name = path.rpartition(b"/")[2]
        if (name.endswith(suffix) and len(name) > len(suffix)
                and not (path + b"/").startswith(FASTREG_DIR.encode() + b"/")):
            blobs.setdefault(object_id.decode(), path.decode(errors="replace"))
    found = []
    for (sha, where), data in zip(blobs.items(), git.cat_blobs(project.root, list(blobs)), strict=True):
        try:
            meta = metafile.loads(data.decode(errors="replace"), f"{where} at blob {sha[:10]}")
        except MetafileError:
            continue
        found.append(Committed(where[: -len(metafile.METAFILE_SUFFIX)], sha, meta))
    return found


def committed_selection(project: Project, revisions: Revisions, have: list[Selected]) -> list[Selected]:
    """The versions the commits `revisions` names hold that `have` (the workspace's selection)
    does not."""
    if not revisions:
        return []
    if project.config.get("core", {}).get("no_scm"):
        raise UsageError("--all-commits, --all-branches, --all-tags and --rev need a Git project")
    return versions_in(project, revisions.rev_list_args(project), have)


def versions_in(project: Project, rev_list_args: list[str], have: list[Selected]) -> list[Selected]:
    """The versions the commits `rev_list_args` names hold that `have` does not: one Selected per
    digest, named `PATH (version DIGEST8)` in messages. Their targets are where the metafile was
    committed; nothing is read from there."""
    seen = {s.meta.digest for s in have if s.subpath is None}
    out = []
    for c in committed_metafiles(project, rev_list_args):
        if c.meta.digest in seen:
            continue
        seen.add(c.meta.digest)
        t = project.target(str(project.root / c.rel))
        label = f"{c.rel} (version {c.meta.digest.hex()[:8]})"
        out.append(Selected(type(t)(label, t.data, t.meta), c.meta, None))
    return out

"""The Git side of a registry, through the git CLI: one persistent bare mirror per registry URL
in the user cache directory, fetched only when the wanted revision is missing or a branch must be
followed (DVC clones the registry again on every call). Files are read at a commit with
`git cat-file`, never from a checkout."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import xxhash

from fastreg import git_cli as gitcli
from fastreg import userdirs
from fastreg.errors import MissingRevisionError, RegistryError
from fastreg.objects import metafile

_SHA = gitcli.SHA


def _git(args: list[str], cwd: Path | None = None, data: bytes | None = None, check: bool = True,
         what: str = "") -> subprocess.CompletedProcess[bytes]:
    return gitcli.run(args, cwd, data, check, what)


def normalize_url(url: str) -> str:
    """Local paths become absolute (the same registry gets the same mirror from any directory)."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    return str(Path(url).expanduser().absolute())


@dataclass(frozen=True, slots=True)
class Resolved:
    url: str
    rev: str | None
    commit: str
    mirror: Path


class Mirror:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.path = userdirs.mirrors() / (xxhash.xxh3_64_hexdigest(self.url.encode()) + ".git")

    def _ensure(self) -> bool:
        """Clone the bare mirror if missing; True when it was just cloned (so it is fresh)."""
        if (self.path / "HEAD").exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        _git(["clone", "--mirror", "--quiet", self.url, str(tmp)],
             what=f"cloning the registry {self.url} (is the URL right and reachable?)")
        try:
            os.replace(tmp, self.path)
        except OSError:
            pass  # another process won the race: its mirror is as good
        return True

    def fetch(self) -> None:
        """Fetch every ref, and follow the registry's HEAD: "the default branch" is the branch the
        registry's HEAD names as of the last fetch, for update, list and status alike (a mirror's
        HEAD is otherwise set once, at clone time)."""
        # Both at once: the second connection to the registry costs no extra wait.
        with gitcli.started(["ls-remote", "--symref", "origin", "HEAD"], cwd=self.path) as symref:
            _git(["fetch", "--prune", "--quiet", "origin"], cwd=self.path, what=f"fetching {self.url}")
            out = symref.communicate()[0]
        for line in out.decode(errors="replace").splitlines():
            ref, _, name = line.partition("\t")
            if name == "HEAD" and ref.startswith("ref: refs/heads/"):
                if (self.path / "HEAD").read_text(errors="replace").strip() != ref:
                    _git(["symbolic-ref", "HEAD", ref[len("ref: "):]], cwd=self.path, check=False)
                break

    def _commit_of(self, rev: str) -> str | None:
        return gitcli.commit_of(self.path, rev)

    def _is_branch(self, rev: str) -> bool:
        p = _git(["show-ref", "--verify", "--quiet", f"refs/heads/{rev}"], cwd=self.path, check=False)
        return p.returncode == 0

    def resolve(self, rev: str | None) -> Resolved:
        """The commit of rev (branch, tag, full or short sha; None: the default branch). A
        branch (or the default branch) is fetched first so it is followed; a tag or commit
        already in the mirror costs no network."""
        fresh = self._ensure()
        if not fresh and (rev is None or self._is_branch(rev) or self._commit_of(rev) is None):
            self.fetch()
        commit = self._commit_of(rev or "HEAD")
        if commit is None and rev is None:
            raise RegistryError(f"the registry {self.url} has no commits yet (or its default branch is empty)")
        if commit is None:
            raise MissingRevisionError(f"revision {rev!r} not found in the registry {self.url}")
        return Resolved(self.url, rev, commit, self.path)

    def read_many(self, commit: str, paths: list[str]) -> list[bytes | None]:
        """Several files at commit with one git process (None: missing, or not a file)."""
        return gitcli.cat_files(self.path, [f"{commit}:{p}" for p in paths])

    def names(self, commit: str, suffix: str) -> frozenset[str]:
        """The paths of the files at commit whose names end with suffix (one ls-tree)."""
        return frozenset(name for name, typ, _, _ in gitcli.ls_tree(self.path, commit)
                         if typ == "blob" and name.endswith(suffix))

    def read(self, commit: str, path: str) -> bytes | None:
        p = _git(["cat-file", "blob", f"{commit}:{path}"], cwd=self.path, check=False)
        return p.stdout if p.returncode == 0 else None

    def kind(self, commit: str, path: str) -> str | None:
        """'blob', 'tree' or None (missing) for a path at a commit."""
        p = _git(["cat-file", "-t", f"{commit}:{path}"], cwd=self.path, check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def ls_tree(self, commit: str, path: str, recursive: bool) -> list[tuple[str, str, int]]:
        """(path, type, size) entries under path (the whole tree when path is '')."""
        if path:
            path = path.rstrip("/") + "/" if self.kind(commit, path) == "tree" else path
        return [(name, typ, size) for name, typ, _, size in gitcli.ls_tree(self.path, commit, path, recursive, True)]

    def metafiles(self, commit: str) -> dict[str, metafile.Metafile]:
        """Every metafile at commit, by its target path (a malformed one is an error naming it)."""
        return gitcli.metafiles_at(self.path, commit, self.url)

    def refs(self) -> list[tuple[str, str, str]]:
        """(name, "branch"|"tag", commit) of every branch and tag, as of the last fetch."""
        p = _git(["for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", "refs/heads",
                  "refs/tags"], cwd=self.path, what=f"reading the refs of {self.url}")
        out = []
        for line in p.stdout.decode(errors="replace").splitlines():
            ref, obj, peeled = [*line.split("\0"), "", ""][:3]
            kind, _, name = ref.removeprefix("refs/").partition("/")
            commit = peeled or obj  # an annotated tag: the commit it points at
            if _SHA.fullmatch(commit):
                out.append((name, "branch" if kind == "heads" else "tag", commit))
        return out

    def commit_time(self, commit: str) -> int:
        """The commit's committer time (seconds since the epoch)."""
        p = _git(["show", "-s", "--format=%ct", commit], cwd=self.path, what=f"reading a commit of {self.url}")
        return int(p.stdout.decode().strip() or 0)

    def log(self, limit: int, pathspecs: list[str], skip: int = 0) -> list[Commit]:
        """The latest commits (of every branch and tag) that changed a path matching one of
        pathspecs, newest first, after the first `skip` of them."""
        p = _git(["log", "--branches", "--tags", f"--max-count={limit}", f"--skip={skip}",
                  "--format=%H%x00%P%x00%at%x00%an%x00%s",
                  "--", *pathspecs], cwd=self.path, what=f"reading the history of {self.url}")
        out = []
        for line in p.stdout.decode(errors="replace").splitlines():
            parts = line.split("\0")
            if len(parts) == 5 and _SHA.fullmatch(parts[0]):
                out.append(Commit(parts[0], tuple(parts[1].split()), int(parts[2]), parts[3], parts[4]))
        return out


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    time: int  # seconds since the epoch
    author: str
    subject: str


def moved_head(url: str, rev: str | None, rev_lock: str) -> str | None:
    """For an import that follows a branch (or the default branch), the branch's current commit
    when it is no longer rev_lock; None when pinned (tag or commit), unchanged, or unreachable.
    One `git ls-remote`, no clone."""
    p = _git(["ls-remote", normalize_url(url), rev or "HEAD"], check=False)
    if p.returncode != 0:
        return None
    for line in p.stdout.decode(errors="replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref in (f"refs/heads/{rev}", "HEAD") and _SHA.fullmatch(sha):
            return sha if sha != rev_lock else None
    return None

"""The project: where .fastreg/ lives, how user paths map to targets, which metafiles exist."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastreg import tmpnames
from fastreg.errors import (
    FastregError,
    GitError,
    LockedError,
    MetafileError,
    NotAProjectError,
    PathError,
    UnmergedError,
)
from fastreg.objects import metafile
from fastreg.repo import config as cfg
from fastreg.repo.cache import Cache

FASTREG_DIR = ".fastreg"
LOCK_TIMEOUT = 60.0  # seconds a command waits for another one in the same project
_FASTREG_GITIGNORE = "/config.local\n/cache/\n/state/\n/lock\n"
_SKIP_DIRS = {".git", FASTREG_DIR}


@dataclass(frozen=True, slots=True)
class Target:
    """A tracked (or to-be-tracked) path: `rel` is project-relative POSIX."""

    rel: str
    data: Path
    meta: Path

    @property
    def name(self) -> str:
        return self.data.name


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / FASTREG_DIR
        doc = cfg.merged(self.dir)
        cache_cfg = cfg.cache_config(doc, self.dir)
        self.config = doc
        self.cache = Cache(cache_cfg.directory or self.dir / "cache", cache_cfg.link_types)
        self._migrate_state()
        if self.dir.is_dir():
            self._tidy()
        self.shared_cache = cache_cfg.directory is not None
        if self.shared_cache and self.dir.is_dir():
            with contextlib.suppress(OSError):  # a read-only cache dir: nothing of ours to protect there
                self.cache.register_project(self.root)

    # -- discovery ---------------------------------------------------------------------------
    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        here = (start or Path.cwd()).absolute()
        for d in (here, *here.parents):
            if (d / FASTREG_DIR).is_dir():
                return cls(d)
        raise NotAProjectError(
            f"not inside a fastreg project ({here} and its parents have no {FASTREG_DIR}/); "
            "run `fastreg init` first"
        )

    @classmethod
    def init(cls, root: Path, no_scm: bool) -> tuple[Project, bool]:
        """Make root a project: .fastreg/ with its config, .gitignore and cache. Returns the
        project and whether it existed already. The Git set-up (.gitattributes, the clone's merge
        driver and pre-push hook) is repo/gitsetup.py's, which the CLI runs."""
        root = root.absolute()
        d = root / FASTREG_DIR
        if d.exists():
            if not d.is_dir() or not (d / "config").exists():
                raise PathError(f"{d} exists but is not a fastreg project's folder; move it away first")
            return cls(root), True
        if not no_scm and not _in_git_work_tree(root):
            raise NotAProjectError(
                f"{root} is not inside a Git work tree; run `git init` first, or use "
                "`fastreg init --no-scm` to track data without Git"
            )
        d.mkdir()
        cfg.write_toml(d / "config", {"core": {"no_scm": no_scm}} if no_scm else {})
        (d / ".gitignore").write_text(_FASTREG_GITIGNORE)
        project = cls(root)
        project.cache.ensure()
        return project, False

    @property
    def state_dir(self) -> Path:
        """Local state that outlives a command and is never committed: stat caches, remote index
        mirrors, this clone's project id."""
        return self.dir / "state"

    @property
    def project_id(self) -> str:
        """The id this clone's snapshots carry on remotes: a random seed kept in state/ (never
        committed, so every clone is a project of its own), hashed with the host and the root, so
        a copy of the folder elsewhere is a project of its own too. Two places that shared an id
        would make one's snapshot supersede the other's; separate ids only ever keep more."""
        import socket

        import xxhash

        seed_file = self.state_dir / "project-seed"
        try:
            seed = seed_file.read_text().strip()
        except FileNotFoundError:
            seed = os.urandom(16).hex()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.write_text_atomic(seed_file, seed + "\n")
        return xxhash.xxh3_64_hexdigest(f"{seed}\0{socket.gethostname()}\0{self.root}".encode())

    @property
    def where(self) -> str:
        import socket

        return f"{socket.gethostname()}:{self.root}"

    def _tidy(self) -> None:
        """What every command puts right first: cache folders that are gone (`rm -rf
        .fastreg/cache`, a fresh clone) are made again, and stat cache temp files left by a
        killed command are removed."""
        from fastreg.repo.statcache import sweep_temps

        if not self.cache.tmp_dir.is_dir():
            with contextlib.suppress(OSError):  # a read-only shared cache: its users keep it whole
                self.cache.ensure()
        sweep_temps(self.state_dir)

    def _migrate_state(self) -> None:
        """Projects made before `.fastreg/state/` kept the same files in `.fastreg/tmp/`: move them
        (one rename) and ignore the new folder in Git."""
        old = self.dir / "tmp"
        if not old.is_dir() or self.state_dir.exists():
            return
        with contextlib.suppress(OSError):
            os.rename(old, self.state_dir)
            gi = self.dir / ".gitignore"
            text = gi.read_text() if gi.exists() else ""
            if "/state/" not in text.split():
                self.write_text_atomic(gi, text + ("" if not text or text.endswith("\n") else "\n") + "/state/\n")

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Serializes commands that change the cache or workspace within one project. A command
        that finds the lock taken waits for it (saying so once on stderr), up to `timeout`
        seconds (default: $FASTREG_LOCK_TIMEOUT, else LOCK_TIMEOUT; 0: fail at once)."""
        import sys
        import time

        if timeout is None:
            try:
                timeout = float(os.environ.get("FASTREG_LOCK_TIMEOUT", LOCK_TIMEOUT))
            except ValueError:
                timeout = LOCK_TIMEOUT
        self.dir.mkdir(exist_ok=True)
        with open(self.dir / "lock", "a") as f:
            deadline = time.monotonic() + timeout
            said = False
            while True:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockedError(
                            f"another fastreg command is running in {self.root} (waited {timeout:.0f} s); let it "
                            "finish and run this again (FASTREG_LOCK_TIMEOUT=SECONDS waits longer)") from None
                    if not said:
                        print(f"fastreg: waiting for another fastreg command in {self.root} to finish (up to "
                              f"{timeout:.0f} s)...", file=sys.stderr, flush=True)
                        said = True
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- targets -----------------------------------------------------------------------------
    def target(self, user_path: str, must_exist: bool = False) -> Target:
        """Map a command-line path (data path or its metafile) to a Target, with the checks every
        command shares: inside the project, not inside .fastreg/, not the project root."""
        p = Path(user_path)
        if p.name.endswith(metafile.METAFILE_SUFFIX) and len(p.name) > len(metafile.METAFILE_SUFFIX):
            p = p.with_name(p.name[: -len(metafile.METAFILE_SUFFIX)])
        absolute = Path(os.path.normpath(Path.cwd() / p))
        try:
            rel = absolute.relative_to(self.root)
        except ValueError:
            raise PathError(f"{user_path}: outside the project {self.root}; move the data inside it") from None
        parts = rel.parts
        if not parts:
            raise PathError(f"{user_path}: cannot track the project root; name a file or directory inside it")
        if parts[0] == FASTREG_DIR:
            raise PathError(f"{user_path}: inside {FASTREG_DIR}/, which fastreg manages itself")
        if parts[0] == ".git":
            raise PathError(f"{user_path}: inside .git/")
        if len((absolute.name + metafile.METAFILE_SUFFIX).encode("utf-8", "surrogateescape")) > tmpnames.NAME_MAX:
            raise PathError(f"{user_path}: the name is too long to be tracked on its own (its metafile name "
                            f"would pass {tmpnames.NAME_MAX} bytes); track the folder that holds it")
        t = Target(rel.as_posix(), absolute, absolute.with_name(absolute.name + metafile.METAFILE_SUFFIX))
        if must_exist and not t.meta.exists():
            raise PathError(f"{user_path}: not tracked (no {t.rel}{metafile.METAFILE_SUFFIX}); run `fastreg add` first")
        return t

    def target_from_meta(self, meta_path: Path) -> Target:
        data = meta_path.with_name(meta_path.name[: -len(metafile.METAFILE_SUFFIX)])
        return Target(data.relative_to(self.root).as_posix(), data, meta_path)

    def tracked_ancestor(self, t: Target) -> Target | None:
        """The tracked directory that contains t, if any."""
        for parent in Path(t.rel).parents:
            if parent == Path("."):
                break
            meta = self.root / (parent.as_posix() + metafile.METAFILE_SUFFIX)
            if meta.exists():
                return self.target_from_meta(meta)
        return None

    def metafiles(self) -> list[Target]:
        """Every target in the workspace, found by walking it; tracked data dirs are not entered."""
        found: list[Target] = []

        def walk(d: Path) -> None:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                return
            names = {e.name for e in entries}
            for e in entries:
                suffix = metafile.METAFILE_SUFFIX
                if e.name.endswith(suffix) and e.is_file() and len(e.name) > len(suffix):
                    found.append(self.target_from_meta(Path(e.path)))
            for e in entries:
                if (e.name in _SKIP_DIRS and d == self.root) or e.name + metafile.METAFILE_SUFFIX in names:
                    continue
                if e.name == ".git":
                    continue
                if e.is_dir(follow_symlinks=False):
                    walk(Path(e.path))

        walk(self.root)
        return found

    def read_meta(self, t: Target, unmerged_ok: bool = False) -> metafile.Metafile:
        """The metafile of t. One that a Git merge left unmerged (conflict markers, or the
        conflicts the merge driver recorded) is an UnmergedError naming the commands that resolve
        it, unless unmerged_ok and it is the driver's (status and add read those)."""
        try:
            text = t.meta.read_text()
        except FileNotFoundError:
            raise PathError(f"{t.rel}: not tracked (no {t.rel}{metafile.METAFILE_SUFFIX})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MetafileError(f"{t.rel}{metafile.METAFILE_SUFFIX}: cannot read ({exc})") from None
        meta = metafile.loads(text, f"{t.rel}{metafile.METAFILE_SUFFIX}")
        if meta.path != t.name:
            raise MetafileError(
                f"{t.rel}{metafile.METAFILE_SUFFIX}: says path = {meta.path!r} but sits beside {t.name!r}; "
                "restore it from Git or re-run `fastreg add`"
            )
        if meta.conflicts and not unmerged_ok:
            raise unmerged_error(t, meta)
        return meta

    def write_meta(self, t: Target, meta: metafile.Metafile) -> bool:
        """Write the metafile (temp + rename); False if it already had exactly this content."""
        text = metafile.dumps(meta)
        with contextlib.suppress(OSError):
            if t.meta.read_text() == text:
                return False
        self.write_text_atomic(t.meta, text)
        return True

    @staticmethod
    def write_text_atomic(path: Path, text: str) -> None:
        tmp = tmpnames.beside(path, ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def ignore(self, t: Target) -> None:
        """Add /NAME to the .gitignore beside the data (once)."""
        gi = t.data.parent / ".gitignore"
        line = "/" + _gitignore_escape(t.name)
        try:
            text = gi.read_text()
        except FileNotFoundError:
            text = ""
        if line in text.splitlines():
            return
        if text and not text.endswith("\n"):
            text += "\n"
        tmp = gi.with_name(".gitignore.fastreg-tmp")
        tmp.write_text(text + line + "\n")
        os.replace(tmp, gi)


    def unignore(self, t: Target) -> None:
        """Remove the /NAME line that ignore() wrote (the .gitignore goes when nothing is left)."""
        gi = t.data.parent / ".gitignore"
        line = "/" + _gitignore_escape(t.name)
        try:
            lines = gi.read_text().splitlines()
        except FileNotFoundError:
            return
        if line not in lines:
            return
        rest = [x for x in lines if x != line]
        if not any(x.strip() for x in rest):
            gi.unlink()
            return
        self.write_text_atomic(gi, "\n".join(rest) + "\n")


def _gitignore_escape(name: str) -> str:
    out = name
    for ch in "\\*?[":
        out = out.replace(ch, "\\" + ch)
    if out.startswith(("#", "!")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def _in_git_work_tree(path: Path) -> bool:
    from fastreg import git_cli as git

    try:
        out = git.run(["rev-parse", "--is-inside-work-tree"], cwd=path, check=False)
    except FastregError:
        raise GitError("git is not installed; install it or use `fastreg init --no-scm`") from None
    return out.returncode == 0 and out.stdout.decode().strip() == "true"


def unmerged_error(t: Target, meta: metafile.Metafile) -> UnmergedError:
    where = f"{t.rel}{metafile.METAFILE_SUFFIX}"
    n = len(meta.conflicts)
    return UnmergedError(f"{where}: unmerged: {n} conflict{'s' if n != 1 else ''} from a Git merge (first: "
                         f"{meta.conflicts[0]}); {metafile.unmerged_hint(t.rel)}")

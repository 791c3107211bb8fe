"""Real DVC for the tests: DVC 3 and DVC 2, each installed once into its own virtualenv under
`.tools/` (as the benchmarks install their peers), and DVC projects built with it."""

from __future__ import annotations

import fcntl
import filecmp
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / ".tools"
VERSIONS = {3: "3.67.1", 2: "2.58.2"}
#: DVC 2 predates the newest releases of three of its dependencies (pathspec 0.12, dulwich 0.22, pygit2 1.15
#: dropped what it imports): the versions of its time.
PINS = {3: [], 2: ["dulwich<0.22", "pathspec<0.12", "pygit2<1.15"]}


def dvc_exe(major: int) -> Path:
    """The dvc executable of DVC `major`, installed on first use (one installer at a time)."""
    venv = TOOLS / f"dvc{major}"
    exe = venv / "bin" / "dvc"
    TOOLS.mkdir(exist_ok=True)
    with open(TOOLS / f"dvc{major}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            print(f"installing DVC {VERSIONS[major]} into {venv}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"dvc[s3]=={VERSIONS[major]}", *PINS[major]],
                           check=True, stdout=subprocess.DEVNULL)
    return exe


class Dvc:
    """Runs one DVC version; no update checks, no analytics, its site cache under `site`."""

    def __init__(self, major: int, site: Path) -> None:
        self.major = major
        self.exe = dvc_exe(major)
        # DVC's own system config, which also keeps the user's DVC config out of the tests. It
        # names copy as the link type: DVC's default (reflink, then copy) removes a failed type from
        # a list its download threads share, and two threads that both fail a reflink empty it ("no
        # more link types left to try out"). A copy has the same bytes as a reflink.
        config = site / "config"
        config.mkdir(exist_ok=True)
        (config / "config").write_text("[cache]\n    type = copy\n")
        self.extra = {"DVC_NO_ANALYTICS": "1", "CI": "1", "DVC_SITE_CACHE_DIR": str(site),
                      "DVC_SYSTEM_CONFIG_DIR": str(config), "DVC_GLOBAL_CONFIG_DIR": str(config),
                      "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                      "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}

    def __call__(self, *args: str, cwd: Path) -> str:
        env = {**os.environ, **self.extra}  # as it is now: the S3 keys are set once SeaweedFS runs
        p = subprocess.run([str(self.exe), *args], cwd=cwd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError(f"dvc {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p.stdout


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@dataclass
class DvcProject:
    root: Path
    dvc: Dvc
    remote: str  # the default remote's url

    @property
    def url(self) -> str:
        return str(self.root)

    def get(self, path: str, out: Path, rev: str) -> Path:
        """`dvc get` of path at rev into out (the reference every fastreg read is compared with)."""
        self.dvc("get", self.url, path, "--rev", rev, "-o", str(out), cwd=out.parent)
        return out


def new_project(root: Path, dvc: Dvc, remote: str, endpoint: str | None = None) -> DvcProject:
    root.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=root)
    git("config", "user.email", "t@example.invalid", cwd=root)
    git("config", "user.name", "t", cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("remote", "add", "-d", "store", remote, cwd=root)
    if endpoint is not None:
        dvc("remote", "modify", "store", "endpointurl", endpoint, cwd=root)
    return DvcProject(root, dvc, remote)


def commit(p: DvcProject, message: str, tag: str | None = None) -> None:
    git("add", "-A", cwd=p.root)
    git("commit", "-q", "-m", message, cwd=p.root)
    if tag:
        git("tag", tag, cwd=p.root)


def build_v3(p: DvcProject, make_images: Callable[..., int]) -> None:
    """A DVC 3 registry: `data` (a directory out of images in nested folders), `models/model.bin`
    (a single-file out), `sub/nested/table.csv` (an out whose .dvc file is in a subfolder), a
    pipeline in `pipe/` (dvc.lock: `pipe/out/summary.txt` cached, `pipe/report.txt` with
    cache: false, in Git), and `README.md` in Git. v1, then v2 (images added, one changed, one
    removed), both pushed."""
    root = p.root
    make_images(root, train=24, validation=8, mean_kb=8)
    (root / "models").mkdir()
    (root / "models" / "model.bin").write_bytes(random.Random(7).randbytes(300_000))
    (root / "sub" / "nested").mkdir(parents=True)
    (root / "sub" / "nested" / "table.csv").write_text("".join(f"{i},{i * i}\n" for i in range(500)))
    (root / "README.md").write_text("a DVC registry\n")
    for target in ("data", "models/model.bin", "sub/nested/table.csv"):
        p.dvc("add", "-q", target, cwd=root)
    (root / "pipe").mkdir()
    p.dvc("stage", "add", "-q", "-n", "features", "-d", "../sub/nested/table.csv", "-o", "out/summary.txt",
          "-O", "report.txt", "mkdir -p out && sort -r ../sub/nested/table.csv > out/summary.txt && "
          "head -n 3 ../sub/nested/table.csv > report.txt", cwd=root / "pipe")
    p.dvc("repro", "-q", cwd=root / "pipe")
    commit(p, "v1", "v1")
    p.dvc("push", "-q", cwd=root)
    make_images(root, train=8, validation=4, start=500, mean_kb=8)
    first = sorted((root / "data" / "train" / "cats").iterdir())
    first[0].write_bytes(first[0].read_bytes() + b"changed")
    first[1].unlink()
    p.dvc("add", "-q", "data", cwd=root)
    commit(p, "v2", "v2")
    p.dvc("push", "-q", cwd=root)


def build_v2(p: DvcProject) -> None:
    """A DVC 2 registry (no `hash:` fields: legacy md5): `texts` (a directory with CRLF text,
    LF text and binary files) and `notes.txt` (a single CRLF file), pushed, tagged v1."""
    root = p.root
    texts = root / "texts"
    (texts / "deep").mkdir(parents=True)
    (texts / "crlf.txt").write_bytes(b"line one\r\nline two\r\n" * 50)
    (texts / "lf.txt").write_bytes(b"plain\nlines\n" * 40)
    (texts / "deep" / "blob.bin").write_bytes(b"\x00\x01\r\n" + random.Random(2).randbytes(5000))
    (root / "notes.txt").write_bytes(b"note\r\n" * 30)
    for target in ("texts", "notes.txt"):
        p.dvc("add", "-q", target, cwd=root)
    commit(p, "v1", "v1")
    p.dvc("push", "-q", cwd=root)


def same_tree(a: Path, b: Path) -> None:
    """a and b hold the same files with the same bytes (shallow=False: contents compared)."""
    def files(root: Path) -> list[str]:
        return sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())

    fa, fb = files(a), files(b)
    assert fa == fb, f"{a} and {b} differ in their files: {sorted(set(fa) ^ set(fb))[:10]}"
    _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
    assert not mismatch and not errors, f"{a} and {b} differ in {mismatch[:10]} {errors[:10]}"

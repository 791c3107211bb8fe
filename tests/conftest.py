from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fastreg.cli import main

OLD = 1_600_000_000  # an mtime well in the past, so stat-cache entries are not "racy"


def age(root: Path) -> None:
    """Set every file's mtime into the past (files written this instant are never trusted by
    the stat cache; see statcache.RACY_NS)."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (OLD, OLD), follow_symlinks=False)


class Run:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str, rc: int = 0, error: bool = True) -> tuple[str, str]:
        """Run the CLI in-process; a non-zero rc must come with exactly one `error: ...` line
        (error=False: an answer, such as `status -q` saying "changed", that is no error)."""
        self.capsys.readouterr()
        got = main(list(args))
        out, err = self.capsys.readouterr()
        assert got == rc, f"fastreg {' '.join(args)} -> {got}, expected {rc}\nstdout: {out}\nstderr: {err}"
        if rc != 0 and error:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), err
        return out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.email", "t@example.invalid"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.name", "t"], cwd=root, check=True)
    monkeypatch.chdir(root)
    run("init")
    return root


@pytest.fixture
def consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> Path:
    """A second project (Git + fastreg) that consumes a registry."""
    root = tmp_path / "consumer"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    monkeypatch.chdir(root)
    run("init")
    return root


@pytest.fixture
def make_images() -> Callable[..., int]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.gen import images

    def make(out: Path, train: int = 40, validation: int = 20, start: int = 1, mean_kb: float = 30) -> int:
        n = images(out, train, validation, start, seed=1, mean_kb=mean_kb)
        age(out)
        return n

    return make


@pytest.fixture(scope="session")
def seaweed():
    """One real SeaweedFS (S3 gateway) per test session on free loopback ports; stopped by PID."""
    from tests.servers import ACCESS_KEY, SECRET_KEY, start_seaweed

    os.environ["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    os.environ.pop("AWS_PROFILE", None)
    server = start_seaweed()
    yield server
    server.stop()


@pytest.fixture
def bucket(seaweed, request) -> str:
    import re

    from tests.servers import make_bucket

    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + os.urandom(3).hex()
    make_bucket(seaweed.endpoint, name)
    return name


@pytest.fixture(scope="session")
def gcs():
    """One real fake-gcs-server (GCS JSON API) per test session on a free loopback port."""
    from tests.servers import start_gcs

    server = start_gcs()
    yield server
    server.stop()


@pytest.fixture
def gcs_bucket(gcs, request) -> str:
    import re

    from tests.servers import make_gcs_bucket

    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + os.urandom(3).hex()
    make_gcs_bucket(gcs.endpoint, name)
    return name


@pytest.fixture(scope="session")
def sshd():
    """One real OpenSSH server (the distribution's sshd, own config) per test session on a free
    loopback port."""
    from tests.servers import SSHD, start_sshd

    if not os.path.exists(SSHD) and os.environ.get("FASTREG_SERVER_TESTS") != "required":
        pytest.skip(f"no {SSHD}: apt-get install openssh-server (`make test` does it as root)")
    server = start_sshd()
    yield server
    server.stop()


@pytest.fixture
def ssh_home(sshd, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose ~/.ssh/known_hosts trusts the test sshd (and nothing else)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "known_hosts").write_text(Path(sshd.known_hosts).read_text())
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture(scope="session")
def azurite():
    """One real Azurite (Azure Blob Storage's emulator, from npm) per test session on a free
    loopback port."""
    from tests.servers import azurite_binary, start_azurite

    if not azurite_binary().exists() and os.environ.get("FASTREG_SERVER_TESTS") != "required":
        pytest.skip(f"no {azurite_binary()}: `make test` installs it (npm install azurite)")
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture
def container(azurite, request) -> str:
    import re

    from tests.servers import make_container

    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + "-" + os.urandom(3).hex()
    make_container(azurite, name)
    return name


@pytest.fixture(autouse=True)
def user_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registry mirrors and the user-level cache live under a per-test XDG_CACHE_HOME."""
    home = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The workspace files add/status/checkout read to hash them, in order."""
    import fastreg.repo.build as build
    import fastreg.repo.workspace as workspace
    from fastreg.chunking import default_chunker

    seen: list[str] = []

    class Counting:
        def __init__(self, digest_size: int = 32) -> None:
            self.real = default_chunker(digest_size)
            self.min_size, self.avg_size, self.max_size = self.real.min_size, self.real.avg_size, self.real.max_size
            self.digest_size = digest_size

        def hash_files(self, paths):
            seen.extend(paths)
            return self.real.hash_files(paths)

    def copy_files(srcs, dsts, modes, **options):  # add in copy mode: each file read once, copied and hashed
        seen.extend(srcs)
        return real_copy(srcs, dsts, modes, **options)

    real_copy = build.copy_files
    monkeypatch.setattr(build, "default_chunker", Counting)
    monkeypatch.setattr(build, "copy_files", copy_files)
    monkeypatch.setattr(workspace, "default_chunker", Counting)
    return seen

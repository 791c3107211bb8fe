"""Many hosts ingest one dataset at once into a SeaweedFS cluster (1 master, 3 volume servers on
directories of their own, a filer, the S3 gateway; volumes small enough that the data spreads
over all three). Four "hosts" (clones with their own caches and HOMEs, real processes, real Git)
add their shard of one tracked dataset and push at the same moment while a fifth runs remote gc
with the default grace; one host is killed mid-push and runs again; then they merge through Git
in turn. A fresh reader pulls and checks every byte. A volume server stopped during a push:
the push fails clearly or succeeds, and a rerun once it is back completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import files_under
from tests.servers import ACCESS_KEY, SECRET_KEY, Cluster, make_bucket, start_seaweed_cluster

FASTREG = str(Path(sys.executable).parent / "fastreg")


@pytest.fixture
def cluster() -> Cluster:
    c = start_seaweed_cluster(volumes=3, volume_size_mb=2)
    yield c
    c.stop()


class Host:
    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "GIT_AUTHOR_NAME": root.name, "GIT_AUTHOR_EMAIL": f"{root.name}@example.invalid",
                    "GIT_COMMITTER_NAME": root.name, "GIT_COMMITTER_EMAIL": f"{root.name}@example.invalid"}

    def fastreg(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([FASTREG, *args], cwd=self.root, env=self.env, capture_output=True, text=True)
        assert (p.returncode == 0) == ok, f"{self.root.name}: fastreg {' '.join(args)} -> {p.returncode}\n{p.stderr}"
        return p

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([FASTREG, *args], cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True)
        assert p.returncode == 0, f"{self.root.name}: git {' '.join(args)}\n{p.stdout}\n{p.stderr}"
        return p


def shard(root: Path, host: int, n: int, kb: int) -> None:
    d = root / "images" / f"host{host}"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"img{i:04}.jpg").write_bytes(os.urandom(kb << 10))


def _origin(tmp_path: Path, cluster: Cluster, bucket: str) -> tuple[Callable[[str], Host], Host]:
    """A bare Git origin and a bucket spread over three volume servers: returns a function that
    clones the origin as a new host, and the first clone, "seed", initialised with the bucket as
    its default remote (nothing committed yet)."""
    make_bucket(cluster.endpoint, bucket)
    cluster.grow(bucket, 3)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)

    def clone(name: str) -> Host:
        subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / name)], check=True, capture_output=True)
        return Host(tmp_path / name, tmp_path / "homes" / name)

    seed = clone("seed")
    seed.fastreg("init")
    seed.fastreg("remote", "add", "-d", "store", f"s3://{bucket}/reg")
    seed.fastreg("remote", "modify", "store", "endpoint_url", cluster.endpoint)
    return clone, seed


def test_four_hosts_ingest_one_dataset_into_a_cluster(tmp_path: Path, cluster: Cluster) -> None:
    clone, seed = _origin(tmp_path, cluster, "multihost")
    shard(seed.root, 9, 10, 20)
    seed.fastreg("add", "images")
    seed.fastreg("push")
    seed.git("add", "-A")
    seed.git("commit", "-qm", "seed")
    seed.git("push", "-q", "origin", "main")

    hosts = [clone(f"host{i}") for i in range(4)]
    for i, h in enumerate(hosts):
        shard(h.root, i, 60, 100)  # ~6 MB a host: spread over the three volume servers
        h.fastreg("add", "images")  # keeps the seed's files, which this clone never checked out
    gc_host = clone("gc")
    # All four push at the same moment, and a gc (default grace) runs meanwhile, twice.
    pushes = [h.start("push") for h in hosts]
    time.sleep(0.3)
    pushes[3].send_signal(signal.SIGKILL)  # one host dies mid-push
    for _ in range(2):
        gc_host.fastreg("gc", "--all-commits", "-r")
    for i, p in enumerate(pushes[:3]):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"host{i}: {err}"
    pushes[3].communicate()
    hosts[3].fastreg("push")  # its rerun completes
    # Then each merges through Git in turn: the metafile merge driver keeps every shard.
    for i, h in enumerate(hosts):
        h.git("commit", "-qam", f"host{i} shard")
        if i:
            h.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
            h.fastreg("push")  # the merged tree nodes
        h.git("push", "-q", "origin", "main")
    want = {**{f"host9/{k}": v for k, v in files_under(seed.root / "images/host9").items()}}
    for i, h in enumerate(hosts):
        want |= {f"host{i}/{k}": v for k, v in files_under(h.root / f"images/host{i}").items()}
    assert len(want) == 250
    reader = clone("reader")
    reader.fastreg("pull")
    assert files_under(reader.root / "images") == want
    assert "No problems found." in reader.fastreg("check", "--read-data").stdout

    spread = [sum(f.stat().st_size for f in Path(cluster.workdir, f"volume{i}").iterdir()) for i in range(3)]
    assert all(s > 1 << 20 for s in spread), spread  # the data is on every volume server
    # One volume server stops while a push runs: it fails with one error line or succeeds,
    # never half-commits; once the server is back the rerun completes.
    hosts[0].git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    shard(hosts[0].root, 0, 20, 200)
    hosts[0].fastreg("add", "images")
    push = hosts[0].start("push")
    time.sleep(0.2)
    cluster.stop_volume(1)
    _, err = push.communicate(timeout=300)
    if push.returncode != 0:
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: ") and "Traceback" not in err
    cluster.start_volume(1)
    hosts[0].fastreg("push")
    hosts[0].git("commit", "-qam", "host0 more")
    hosts[0].git("push", "-q", "origin", "main")
    reader.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    reader.fastreg("pull")
    want |= {f"host0/{k}": v for k, v in files_under(hosts[0].root / "images/host0").items()}
    assert files_under(reader.root / "images") == want
    assert "No problems found." in reader.fastreg("check", "--read-data").stdout


def test_a_dataset_the_remote_lost_blocks_no_other_hosts_push(tmp_path: Path, cluster: Cluster) -> None:
    """Four hosts each push a dataset of their own while a `gc --grace 0` (documented as unsafe)
    runs, and share them through Git (the pre-push hook uploads what a `git push` needs). Then
    the remote loses host 1's dataset (its top tree node, as that gc can do), and every
    host adds and pushes a new dataset: each push uploads the host's own data and fails (exit 3)
    naming host 1's dataset and who can repair it (its committer); `status --remote` says the same
    and still reports the rest. Host 1's push repairs it; then everything pulls and checks."""
    from tests.helpers import Remote

    clone, seed = _origin(tmp_path, cluster, "lost")
    seed.git("add", "-A")
    seed.git("commit", "-qm", "seed")
    seed.git("push", "-q", "origin", "main")
    hosts = [clone(f"host{i}") for i in range(4)]
    gc_host = clone("gc")

    def dataset(h: Host, name: str, n: int) -> None:
        d = h.root / name
        d.mkdir()
        for j in range(n):
            (d / f"{j:03}.bin").write_bytes(os.urandom(40 << 10))
        h.fastreg("add", name)

    for i, h in enumerate(hosts):
        dataset(h, f"ds{i}", 25)
    pushes = [h.start("push") for h in hosts]
    for _ in range(2):
        p = gc_host.start("gc", "--all-commits", "-r", "--grace", "0")
        _, err = p.communicate(timeout=300)
        assert "Traceback" not in err
    for p in pushes:
        _, err = p.communicate(timeout=300)
        assert "Traceback" not in err
    for i, h in enumerate(hosts):  # through Git in turn; the hook puts back what that gc took of each
        h.git("add", "-A")
        h.git("commit", "-qm", f"ds{i}")
        h.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
        h.git("push", "-q", "origin", "main")
    for h in hosts:
        h.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")

    # The remote loses host 1's dataset: its top tree node (the other hosts never pulled it).
    ds1 = tomllib.loads((hosts[1].root / "ds1.fastreg").read_text())["digest"]
    remote = Remote(endpoint=cluster.endpoint, bucket="lost", prefix="reg")
    lost = [k for k in remote.keys("trees/") if k.endswith(ds1[2:])]
    assert len(lost) == 1
    remote.delete(lost[0])

    for i, h in enumerate(hosts):
        dataset(h, f"new{i}", 5)
    for i in (0, 2, 3):
        h = hosts[i]
        st = h.fastreg("status", "--remote")
        assert "ds1:\n    cannot be pushed from here:" in st.stdout and f"new{i}:" in st.stdout
        p = h.fastreg("push", ok=False)
        assert p.returncode == 3, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr
        assert "ds1: " in lines[0] and f"new{i}" not in lines[0]
        assert "last committed by host1 <host1@example.invalid>" in lines[0]  # who can repair it
    hosts[1].fastreg("push")  # the clone that has it repairs it
    for i in (0, 2, 3):
        hosts[i].fastreg("push")
    for i, h in enumerate(hosts):
        h.git("add", "-A")
        h.git("commit", "-qm", f"new{i}")
        h.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
        h.git("push", "-q", "origin", "main")
    reader = clone("reader")
    reader.fastreg("pull")
    for i, h in enumerate(hosts):
        for name in (f"ds{i}", f"new{i}"):
            assert files_under(reader.root / name) == files_under(h.root / name), name
    assert "No problems found." in reader.fastreg("check", "--read-data").stdout

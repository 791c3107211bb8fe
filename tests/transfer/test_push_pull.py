"""push / fetch / pull end to end through the CLI, against a local-directory remote, a real
SeaweedFS (S3), a real HTTP server (read-only) and a fault-injecting proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fastreg.objects import pack
from fastreg.repo import push as sync
from fastreg.repo.project import Project
from fastreg.transfer import layout
from tests.conftest import age
from tests.helpers import file_id, files_under, setup_registry
from tests.servers import start_http


def commit(root: Path, msg: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", msg], cwd=root, check=True)


def clone(src: Path, dst: Path, monkeypatch) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dst)], check=True)
    monkeypatch.chdir(dst)
    return dst


def workspace(root: Path) -> dict[str, bytes]:
    return {**{f"ds/{k}": v for k, v in files_under(root / "ds").items()},
            "model.bin": (root / "model.bin").read_bytes()}


def test_local_remote_round_trip(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    remote = tmp_path / "remote"
    original = setup_registry(project, run, make_images, str(remote))
    out, _ = run("status", "--remote")
    assert "not in remote store" in out
    out, _ = run("push")
    assert "Pushed" in out
    assert (remote / layout.MARKER_KEY).read_text() == "format = 2\n"
    out, _ = run("status", "-r", "store")
    assert "Everything is in remote store" in out
    # A second push with nothing new uploads nothing and costs two listings (index/ and gc/) and
    # one look that the project's snapshot is still there.
    res = sync.push(Project.find(), [], None, None)
    assert (res.packs, res.bytes, res.requests) == (0, 0, 3)
    other = clone(project, tmp_path / "consumer", monkeypatch)
    run("pull")
    assert workspace(other) == original
    # fetch into an empty cache again, only one subfolder
    shutil.rmtree(other / ".fastreg" / "cache")
    shutil.rmtree(other / "ds")
    out, _ = run("pull", "ds/data/train/cats")
    assert "Fetched 15 files" in out
    assert sorted(p.name for p in (other / "ds/data").iterdir()) == ["train"]
    assert len(list((other / "ds/data/train/cats").iterdir())) == 15


def test_incremental_push_uploads_only_new_bytes(tmp_path: Path, project: Path, run, make_images) -> None:
    setup_registry(project, run, make_images, str(tmp_path / "remote"))
    run("push")
    added = make_images(project / "ds", train=20, validation=0, start=500)
    run("add", "ds")
    res = sync.push(Project.find(), [], None, None)
    assert added <= res.bytes - len(pack.PACK_HEADER) * res.packs <= added * 1.05


def test_edit_inside_large_file_uploads_little(tmp_path: Path, project: Path, run) -> None:
    from bench.gen import edit, large

    big = project / "model.bin"
    large(big, 64 << 20, seed=1)
    run("add", "model.bin")
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("push")
    edit(big, 32 << 20, 1 << 20, seed=9)
    age(project)
    run("add", "model.bin")
    # status --remote counts what the push will send (the missing chunks), not the file's size
    doc = json.loads(run("status", "--remote", "--json")[0])
    [st] = doc["targets"]
    assert st["missing_files"] == 1 and 1 << 20 <= st["missing_bytes"] <= 2 << 20 and st["missing_chunks"] >= 1
    out, _ = run("status", "--remote")
    assert "64.0 MiB" not in out and "chunks to upload" in out
    res = sync.push(Project.find(), [], None, None)
    assert 1 << 20 <= res.bytes <= 2 << 20, res.bytes
    assert abs(res.bytes - len(pack.PACK_HEADER) * res.packs - st["missing_bytes"]) < 1024


def test_corrupt_or_truncated_pack_fails_cleanly(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    remote = tmp_path / "remote"
    setup_registry(project, run, make_images, str(remote))
    run("push")
    [packfile] = [p for p in (remote / "packs").rglob("*") if p.is_file()]
    good = packfile.read_bytes()
    for i, damaged in enumerate((good[:100] + bytes([good[100] ^ 1]) + good[101:], good[: len(good) // 2])):
        monkeypatch.chdir(project)
        other = clone(project, tmp_path / f"consumer{i}", monkeypatch)
        packfile.write_bytes(damaged)
        _, err = run("pull", rc=3)
        assert packfile.name in err and ("corrupt" in err or "truncated" in err)
        cached = [p for p in (other / ".fastreg/cache/files").rglob("*") if p.is_file()]
        assert all(file_id(p.read_bytes()).hex() == p.parent.name + p.name
                   for p in cached)
        # Every undamaged file was written, and only those, each with its true bytes.
        originals = {p.relative_to(project / "ds"): p.read_bytes() for p in (project / "ds").rglob("*.jpg")}
        placed = {p.relative_to(other / "ds"): p.read_bytes() for p in (other / "ds").rglob("*.jpg")} \
            if (other / "ds").exists() else {}
        assert all(originals[p] == b for p, b in placed.items()) and len(placed) < len(originals)
        assert "were not written" in err or "was not written" in err
    packfile.write_bytes(good)
    run("pull")


def test_pull_streams_in_batches(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    """Many batches (multi-chunk files, duplicates within and across batches, a batch boundary
    inside a coalesced range) give the same bytes; a corrupt pack found in a later batch fails
    with nothing half-written."""
    from fastreg.transfer import fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "BATCH_FILES", 5)
    remote = tmp_path / "remote"
    make_images(project / "ds", train=30, validation=10)
    big = os.urandom(2 << 20)
    for i in range(3):
        (project / "ds" / f"big{i}.bin").write_bytes(big)  # the same multi-chunk content three times
    (project / "ds" / "again.jpg").write_bytes((project / "ds/data/train/cats/cat.0001.jpg").read_bytes())
    run("add", "ds")
    run("remote", "add", "-d", "store", str(remote))
    run("push")
    commit(project, "data")
    original = files_under(project / "ds")
    other = clone(project, tmp_path / "consumer", monkeypatch)
    _, err = run("pull", "ds/no/such/folder", rc=1)
    assert "not in the tracked directory ds" in err and not (other / "ds").exists()
    out, _ = run("pull")
    assert files_under(other / "ds") == original
    assert f"Fetched {len(set(original.values()))} files" in out
    out, _ = run("status")
    assert "up to date" in out
    # a damaged pack: the error names it, the cache holds only verified objects, no temp files stay
    shutil.rmtree(other / ".fastreg" / "cache")
    shutil.rmtree(other / "ds")
    packs = sorted((p for p in (remote / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim = packs[-1]
    good = victim.read_bytes()
    victim.write_bytes(good[:-10] + bytes(10))
    _, err = run("pull", rc=3)
    assert victim.name in err
    cache = other / ".fastreg" / "cache"
    assert not any((cache / "tmp").iterdir())
    assert all(file_id(p.read_bytes()).hex() == p.parent.name + p.name
               for p in (cache / "files").rglob("*") if p.is_file())
    victim.write_bytes(good)
    run("pull")
    assert files_under(other / "ds") == original
    # a pack whose index segment is gone: planning a later batch fails; the workers stop, no hang
    import signal

    shutil.rmtree(other / ".fastreg")
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=other, check=True)
    shutil.rmtree(other / "ds")
    for seg in (remote / "index").iterdir():
        if pack.decode_segment(seg.read_bytes(), seg.name).pack.hex() == victim.name:
            seg.unlink()
    signal.alarm(60)
    try:
        _, err = run("pull", rc=1)
    finally:
        signal.alarm(0)
    assert "was it pushed?" in err


def test_remote_errors_are_one_line(tmp_path: Path, project: Path, run, make_images) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    _, err = run("push", rc=2)
    assert "no default remote" in err
    _, err = run("push", "-r", "nope", rc=2)
    assert "no remote named 'nope'" in err
    run("remote", "add", "store", str(tmp_path / "r"))
    _, err = run("remote", "add", "store", str(tmp_path / "r2"), rc=2)
    assert "exists already" in err
    _, err = run("remote", "modify", "store", "colour", "blue", rc=2)
    assert "unknown remote option" in err
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / layout.MARKER_KEY).write_text("format = 99\n")
    _, err = run("push", "-r", "store", rc=1)
    assert "format 99" in err and "upgrade" in err
    out, _ = run("remote", "list")
    assert "store" in out


def test_s3_push_pull_and_http_read(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                    seaweed, bucket) -> None:
    original = setup_registry(project, run, make_images, f"s3://{bucket}/registry",
                              ("endpoint_url", seaweed.endpoint))
    run("push")
    res = sync.push(Project.find(), [], None, None)
    assert res.packs == 0 and res.requests == 3  # index/ and gc/ listed, the snapshot still there
    other = clone(project, tmp_path / "consumer", monkeypatch)
    out, _ = run("status")
    assert "run `fastreg pull ds`" in out
    run("pull")
    assert workspace(other) == original
    # remote gc on S3: keeps everything committed, drops what no commit refers to
    monkeypatch.chdir(project)
    (project / "scratch.bin").write_bytes(os.urandom(300_000))
    run("add", "scratch.bin")
    run("push")
    run("remote", "modify", "store", "gc_grace", "0")
    (project / "scratch.bin.fastreg").unlink()
    out, _ = run("gc", "--all-commits", "-r")
    assert "Remote store: deleted 1 packs" in out or "rewrote" in out
    other2 = clone(project, tmp_path / "consumer2", monkeypatch)
    run("pull")
    assert workspace(other2) == original


@pytest.mark.parametrize("ignore_range", [False, True])
def test_http_remote_is_read_only_and_pulls(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                            ignore_range: bool) -> None:
    remote = tmp_path / "remote"
    original = setup_registry(project, run, make_images, str(remote))
    run("push")
    server = start_http(remote, ignore_range=ignore_range)
    try:
        other = clone(project, tmp_path / "consumer", monkeypatch)
        run("remote", "add", "--local", "web", server.url)
        run("pull", "-r", "web")
        assert workspace(other) == original
        _, err = run("push", "-r", "web", rc=1)
        assert "read-only" in err
    finally:
        server.stop()


def test_push_and_pull_through_faults(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                      seaweed, bucket) -> None:
    from tests.faultproxy import FaultProxy

    with FaultProxy(seaweed.endpoint) as proxy:
        original = setup_registry(project, run, make_images, f"s3://{bucket}/registry",
                                  ("endpoint_url", proxy.url), ("pack_size", "1M"))
        run("push")
        other = clone(project, tmp_path / "consumer", monkeypatch)
        run("pull", "-j", "4")
        assert workspace(other) == original
    assert proxy.counts["error"] > 0 and proxy.counts["reset"] > 0 and proxy.counts["delay"] > 0, proxy.counts


def test_remote_gc_keeps_history_and_frees_garbage(tmp_path: Path, project: Path, run, make_images,
                                                    monkeypatch) -> None:
    remote = tmp_path / "remote"
    setup_registry(project, run, make_images, str(remote), ("pack_size", "1M"), ("gc_grace", "0"))
    run("push")
    v1 = workspace(project)
    subprocess.run(["git", "tag", "v1"], cwd=project, check=True)
    # v2 drops the training cats and the model; then a throwaway version that is never committed
    shutil.rmtree(project / "ds/data/train/cats")
    (project / "model.bin").write_bytes(os.urandom(1 << 20))
    run("add", "ds", "model.bin")
    run("push")
    commit(project, "v2")
    v2 = workspace(project)
    (project / "model.bin").write_bytes(os.urandom(2 << 20))
    run("add", "model.bin")
    run("push")
    subprocess.run(["git", "checkout", "--", "model.bin.fastreg"], cwd=project, check=True)
    run("checkout", "--force")

    def remote_bytes() -> int:
        return sum(p.stat().st_size for p in remote.rglob("*") if p.is_file())

    before = remote_bytes()
    out, _ = run("gc", "--all-commits", "-r")
    assert "Remote store" in out
    after_all = remote_bytes()
    assert after_all < before - (2 << 20) * 0.9  # the uncommitted model is gone
    for rev, expected in (("v1", v1), ("main", v2)):
        other = clone(project, tmp_path / f"clone-{rev}", monkeypatch)
        subprocess.run(["git", "checkout", "-q", rev], cwd=other, check=True)
        run("pull")
        assert workspace(other) == expected
    monkeypatch.chdir(project)
    out, _ = run("gc", "--workspace", "-r", "store")
    assert remote_bytes() < after_all  # v1-only data (cats, the old model) is gone too
    other = clone(project, tmp_path / "clone-after", monkeypatch)
    run("pull")
    assert workspace(other) == v2


def test_push_notices_a_remote_that_lost_objects(tmp_path: Path, project: Path, run, make_images,
                                                 monkeypatch) -> None:
    remote = tmp_path / "remote"
    original = setup_registry(project, run, make_images, str(remote))
    run("push")
    shutil.rmtree(remote)  # emptied behind the client's back (or cleaned by another machine's gc)
    out, _ = run("push")
    assert "Pushed" in out  # the mirror did not vouch for objects that are gone
    other = clone(project, tmp_path / "consumer", monkeypatch)
    run("pull")
    assert workspace(other) == original


def test_kill_9_during_push_then_push_again(tmp_path: Path, project: Path, run, make_images,
                                            monkeypatch) -> None:
    import signal
    import sys
    import time

    remote = tmp_path / "remote"
    original = setup_registry(project, run, make_images, str(remote), ("pack_size", "1M"))
    proc = subprocess.Popen([sys.executable, "-m", "fastreg", "push", "-j", "1"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it once the first pack is committed (its index segment exists), with more to go.
    def committed() -> bool:
        return (remote / "index").is_dir() and any((remote / "index").iterdir())

    deadline = time.monotonic() + 60
    while not committed() and time.monotonic() < deadline:
        time.sleep(0.002)
    killed = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "push finished before it could be interrupted"
    # Whatever the remote holds now, every index entry points at bytes that are there.
    run("push")
    other = clone(project, tmp_path / "consumer", monkeypatch)
    run("pull")
    assert workspace(other) == original


def test_concurrent_pushes_lose_nothing(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    import sys

    remote = tmp_path / "remote"
    setup_registry(project, run, make_images, str(remote), ("pack_size", "1M"))
    second = clone(project, tmp_path / "second", monkeypatch)
    # the second machine has its own data (and a share of the same images)
    make_images(second / "ds", train=30, validation=10)
    make_images(second / "ds", train=10, validation=0, start=900)
    # The committed version was never pushed: its tree is nowhere to read, so what this clone
    # never had cannot be kept; add says so, and --prune records the workspace as it is.
    _, err = run("add", "ds", rc=1)
    assert "cannot be read" in err and "--prune" in err
    run("add", "--prune", "ds")
    commit(second, "second")
    # The second clone never pulled model.bin: it pushes what it has, the ds directory.
    procs = [subprocess.Popen([sys.executable, "-m", "fastreg", "push", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for cwd, args in ((project, []), (second, ["ds"]))]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for src, name in ((project, "a"), (second, "b")):
        other = clone(src, tmp_path / f"check-{name}", monkeypatch)
        run("pull")
        assert files_under(other / "ds") == files_under(src / "ds")
    assert (other / "model.bin").read_bytes() == (project / "model.bin").read_bytes()
    # A target whose data is neither here nor on the remote is a clear error (exit 3, as damage).
    monkeypatch.chdir(second)
    (second / "extra.bin").write_bytes(b"x" * 10)
    run("add", "extra.bin")
    shutil.rmtree(second / ".fastreg" / "cache")
    _, err = run("push", "extra.bin", rc=3)
    assert "extra.bin: its data is neither in the local cache nor on the remote" in err


def test_index_mirror_survives_damage(tmp_path: Path) -> None:
    from fastreg.objects import codec
    from fastreg.transfer.index import RemoteIndex

    path = tmp_path / "mirror"
    for junk in (b"garbage", codec.packb(["fastreg.mirror", 1, "u", [], [], b"", b""]),
                 codec.packb(["fastreg.mirror", 2, "u", ["s"], [b"p" * 16], [], b"", b"", b"", b"", [], 0])):
        path.write_bytes(junk)
        m = RemoteIndex(path, "u").load()
        assert (m.segments, m.packs, m.table) == (set(), [], b"")  # rebuilt from the remote, never half-read


def test_a_push_of_one_folder_then_of_everything_sends_everything(tmp_path: Path, project: Path, run, make_images,
                                                                   monkeypatch) -> None:
    """A push of a folder inside a tracked directory uploads that folder only: the tree nodes
    above it certify nothing, the hints name what is there, and the next push of everything
    sends the rest; a reader that cannot list (HTTP) then reads any file."""
    remote = tmp_path / "remote"
    original = setup_registry(project, run, make_images, str(remote))
    for verb in (["push"], ["status", "--remote", ""]):  # a path that is not in the tree is named, not "done"
        _, err = run(*verb, "ds/data/nowhere", rc=1)
        assert "ds/data/nowhere: not in the tracked directory ds" in err
    run("push", "ds/data/train")
    out, _ = run("status", "--remote", "", "ds")
    assert "not in remote store: 10 of 40 files" in out, out  # the validation folder's
    run("push")
    out, _ = run("status", "--remote")
    assert "Everything is in remote store." in out
    server = start_http(remote)
    try:
        other = clone(project, tmp_path / "consumer", monkeypatch)
        run("remote", "add", "--local", "web", server.url)
        run("pull", "-r", "web")
        assert workspace(other) == original
    finally:
        server.stop()

"""When things go wrong in a project: damage named by path, a full disk, killed commands, a held
lock, an interrupted push, data Git could take."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Remote, files_under, largest, setup_project


def flip(remote: Remote, key: str, *fractions: float) -> None:
    data = bytearray(remote.read(key))
    for f in fractions:
        data[int(len(data) * f)] ^= 0xFF
    remote.write(key, bytes(data))


def test_damage_is_named_by_path_and_the_rest_is_pulled(tmp_path: Path, project: Path, run, make_images,
                                                        monkeypatch) -> None:
    original = setup_project(project, run, make_images, str(tmp_path / "remote"))
    remote = Remote(root=tmp_path / "remote")
    flip(remote, largest(remote, "packs/"), 0.3, 0.7)  # two images of one pack
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    _, err = run("pull", rc=3)
    assert "2 files are damaged on the remote and were not written" in err and "corrupt in" in err
    got = files_under(mate / "ds")
    assert len(got) == len(original) - 2 and all(original[p] == b for p, b in got.items())
    damaged = sorted(set(original) - set(got))
    assert all(f"ds/{p}" in err for p in damaged)  # named by path, not by digest
    assert not list((mate / ".fastreg/cache").rglob(".tmp-*"))  # nothing half-written
    # The producer finds and repairs it; the same clone's pull then completes.
    monkeypatch.chdir(project)
    run("check", "--read-data", rc=3, error=False)
    run("push")
    monkeypatch.chdir(mate)
    run("pull")
    assert files_under(mate / "ds") == original


def test_an_existing_clone_pulls_after_the_producer_repairs(tmp_path: Path, project: Path, run, make_images,
                                                           monkeypatch, user_cache_home: Path) -> None:
    original = setup_project(project, run, make_images, str(tmp_path / "remote"))
    remote = Remote(root=tmp_path / "remote")
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    run("pull", "ds/data/validation")  # the clone's mirror of the remote's index is written now
    out_dir = tmp_path / "got"
    run("get", str(project), "ds/data/validation/cats", "-o", str(out_dir))  # ... and the user cache's
    pack = largest(remote, "packs/")
    flip(remote, pack, 0.5)
    monkeypatch.chdir(project)
    run("check", "--read-data", rc=3, error=False)
    out, _ = run("push")
    assert "Repaired 1 damaged pack" in out
    run("check", "--read-data")
    monkeypatch.chdir(mate)
    run("pull")  # the stale mirror still names the withdrawn pack: refreshed, asked again
    assert files_under(mate / "ds") == original
    import fastreg.api

    for rel, body in original.items():  # streaming reads through the user cache's stale mirror
        if not rel.startswith("data/validation/cats/"):
            assert fastreg.api.read(f"ds/{rel}", repo=str(project), mode="rb") == body
    run("get", str(project), "ds", "-o", str(tmp_path / "all"))
    assert files_under(tmp_path / "all") == original


def test_commands_make_the_cache_folders_they_need(tmp_path: Path, project: Path, run, make_images,
                                                   monkeypatch) -> None:
    import shutil

    from tests.helpers import make_registry

    make_registry(project, run, make_images, str(tmp_path / "remote"))
    shutil.rmtree(project / ".fastreg/cache")
    out, _ = run("diff", "cats-dogs-v1", "cats-dogs-v2")  # trees fetched from the remote again
    assert "20 files added" in out
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    run("gc", "--all-commits", "-r")  # a fresh clone that never pulled


def test_a_killed_commands_stat_temp_files_are_removed(project: Path, run) -> None:
    (project / "ds").mkdir()
    (project / "ds/a").write_text("a")
    run("add", "ds")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stat = project / ".fastreg/state/stat"
    leftover = stat / f"{next(stat.iterdir()).name}.{dead.pid}.0badcafe.tmp"
    leftover.write_bytes(b"half a stat cache")
    live = stat / f"x.{os.getpid()}.0badcafe.tmp"  # a command still writing: kept
    live.write_bytes(b"")
    run("status")
    assert not leftover.exists() and live.exists()


@pytest.fixture
def tiny(tmp_path: Path):
    """A 2 MiB filesystem of its own (tmpfs), to run out of space on; grown by remounting."""
    d = tmp_path / "tiny"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(d)], check=True)

    yield d, grow
    subprocess.run(["umount", "-l", str(d)], check=True)


def test_no_space_during_a_pull_is_one_line_and_the_retry_works(tmp_path: Path, project: Path, run, make_images,
                                                                 monkeypatch, tiny) -> None:
    where, grow = tiny
    original = setup_project(project, run, make_images, str(tmp_path / "remote"))  # 50 images, ~1.5 MB
    make_images(project / "ds", train=40, validation=0, start=500)
    (project / "ds/big.bin").write_bytes(os.urandom(3 << 20))  # chunked: assembled in a temp file
    run("add", "ds")
    run("push")
    subprocess.run(["git", "commit", "-qam", "more"], cwd=project, check=True)
    original = files_under(project / "ds")
    mate = where / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    _, err = run("pull", rc=1)
    assert "no space left on the device" in err and ("cache" in err or "workspace" in err)
    assert not list((mate / ".fastreg/cache").rglob(".tmp-*"))
    grow()
    run("pull")
    assert files_under(mate / "ds") == original


def test_no_space_in_the_cache_during_add_names_the_cache(tmp_path: Path, project: Path, run, make_images,
                                                          tiny) -> None:
    where, grow = tiny
    (project / ".fastreg/config.local").write_text(f'[cache]\ndir = "{where / "cache"}"\n')
    make_images(project / "ds", train=100, validation=0)  # ~3 MB
    _, err = run("add", "ds", rc=1)
    assert "no space left on the device of the cache" in err and str(where / "cache") in err
    assert "cannot read" not in err and "[cache]" in err
    grow()
    run("add", "ds")
    run("check", "--cache")


def test_no_space_in_the_workspace_during_a_pull_names_the_workspace(tmp_path: Path, project: Path, run,
                                                                     make_images, monkeypatch, tiny) -> None:
    where, grow = tiny
    setup_project(project, run, make_images, str(tmp_path / "remote"))
    (project / "ds/big.bin").write_bytes(os.urandom(3 << 20))
    run("add", "ds")
    run("push")
    subprocess.run(["git", "commit", "-qam", "big"], cwd=project, check=True)
    original = files_under(project / "ds")
    mate = where / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    (mate / ".fastreg/config.local").write_text(f'[cache]\ndir = "{tmp_path / "cache"}"\n')
    monkeypatch.chdir(mate)
    _, err = run("pull", rc=1)
    assert "no space left on the device of the workspace" in err
    assert not [p for p in (mate / "ds").rglob("*") if ".fastreg-tmp" in p.name or p.name.startswith(".tmp")]
    grow()
    run("pull")
    assert files_under(mate / "ds") == original


def test_empty_folders_inside_tracked_data_are_kept(tmp_path: Path, project: Path, run, monkeypatch) -> None:
    ds = project / "ds"
    for d in ("empty", "deep/er/est", "full/inner-empty"):
        (ds / d).mkdir(parents=True)
    (ds / "full/a.txt").write_text("a")
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "folders"], cwd=project, check=True)
    folders = {"empty", "deep", "deep/er", "deep/er/est", "full", "full/inner-empty"}

    def have(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}

    (ds / "full/inner-empty").rmdir()
    (ds / "empty").rmdir()
    run("checkout")  # an existing workspace: the folders it lacks come back
    assert have(ds) == folders
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    run("pull")  # a fresh check-out
    assert have(mate / "ds") == folders
    run("get", str(project), "ds", "-o", str(tmp_path / "got"))  # and get
    assert have(tmp_path / "got") == folders


def test_a_second_add_waits_for_the_lock(project: Path, run, monkeypatch, capsys) -> None:
    import fcntl
    import threading
    import time

    (project / "x.txt").write_text("x")
    held = open(project / ".fastreg/lock", "a")  # noqa: SIM115 - another command holds the lock
    fcntl.flock(held.fileno(), fcntl.LOCK_EX)
    threading.Timer(0.6, lambda: (fcntl.flock(held.fileno(), fcntl.LOCK_UN), held.close())).start()
    started = time.monotonic()
    _, err = run("add", "x.txt")
    assert time.monotonic() - started >= 0.5 and "waiting for another fastreg command" in err
    assert (project / "x.txt.fastreg").exists()
    held = open(project / ".fastreg/lock", "a")  # noqa: SIM115
    fcntl.flock(held.fileno(), fcntl.LOCK_EX)
    try:
        monkeypatch.setenv("FASTREG_LOCK_TIMEOUT", "0.3")
        _, err = run("add", "x.txt", rc=6, error=False)
        assert err.strip().splitlines()[-1].startswith("error: another fastreg command is running")
    finally:
        held.close()


def test_status_warns_when_tracked_data_could_go_into_git(project: Path, run) -> None:
    ds = project / "ds"
    ds.mkdir()
    (ds / "a.bin").write_bytes(b"a")
    run("add", "ds")
    _, err = run("status")
    assert "warning" not in err
    (project / "data").mkdir()  # moved by hand, not with `fastreg move`: no .gitignore line there
    (project / "ds").rename(project / "data/ds")
    (project / "ds.fastreg").rename(project / "data/ds.fastreg")
    _, err = run("status")
    assert "warning: data/ds is not git-ignored" in err and "fastreg add data/ds" in err
    subprocess.run(["git", "add", "data"], cwd=project, check=True)  # the user stages it: the bytes too
    _, err = run("status")
    assert "data/ds: 1 file of tracked data in Git's index" in err and "git rm -r --cached -- data/ds" in err
    subprocess.run(["git", "rm", "-q", "-r", "--cached", "--", "data/ds"], cwd=project, check=True)
    run("add", "data/ds")
    _, err = run("status")
    assert "warning" not in err


def test_an_interrupted_push_keeps_what_reached_s3(tmp_path: Path, project: Path, run, seaweed, bucket) -> None:
    """Ctrl-C while packs are on their way: the ones already sent are committed (segment written),
    so the rerun sends only the rest and the bucket holds no orphan pack."""
    import signal
    import sys
    import time

    from tests.servers import _client

    ds = project / "ds"
    ds.mkdir()
    for i in range(40):
        (ds / f"f{i:02}").write_bytes(os.urandom(4 << 20))
    from tests.faultproxy import FaultProxy

    run("add", "ds")
    run("remote", "add", "-d", "store", f"s3://{bucket}/r")
    run("remote", "modify", "store", "pack_size", "4M")  # 40 packs: the interrupt lands mid-push
    s3 = _client(seaweed.endpoint)

    def keys(under: str) -> list[dict]:
        found = s3.list_objects_v2(Bucket=bucket, Prefix=f"r/{under}").get("Contents", [])
        return [o for o in found if len(o["Key"].rsplit("/", 1)[-1]) == 64]  # objects (SHA-256 names), not folders

    with FaultProxy(seaweed.endpoint, error_rate=0, reset_rate=0, delay_rate=1.0, delay=1.0) as proxy:
        run("remote", "modify", "store", "endpoint_url", proxy.url)  # every request a second late
        p = subprocess.Popen([str(Path(sys.executable).parent / "fastreg"), "push"], cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not keys("index/") and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err
    packs, segments = keys("packs/"), keys("index/")
    assert 1 <= len(packs) == len(segments) < 40  # every pack that arrived is committed
    kept = sum(o["Size"] for o in packs)
    run("remote", "modify", "store", "endpoint_url", seaweed.endpoint)  # the rerun at full speed
    out, _ = run("push")
    sent = float(out.split("Pushed ")[1].split(" MiB")[0]) * (1 << 20)
    assert abs(sent + kept - (160 << 20)) < (1 << 20), (sent, kept)  # nothing sent twice

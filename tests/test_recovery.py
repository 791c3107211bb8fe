"""When things go wrong on a remote: damage is named by path and does not stop the rest of a
pull, and a clone whose copy of the remote's index went stale after a repair recovers by itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.test_check import Remote, largest, setup_project
from tests.test_registry import files_under


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
    run("get", str(project), "ds", "-o", str(tmp_path / "all"))
    assert files_under(tmp_path / "all") == original


def test_commands_make_the_cache_folders_they_need(tmp_path: Path, project: Path, run, make_images,
                                                   monkeypatch) -> None:
    import shutil

    from tests.test_registry import make_registry

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

"""Folder fingerprints in the stat cache: a status or add with nothing changed looks at no
folder's files, and every kind of change (content with the same size, mode, a new file deep
down, a folder gone, a rename, an odd entry) still makes the folder be read, so that add records
exactly what a fresh add of the same tree records."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fastreg.repo import build as build_mod
from fastreg.repo import scan as scan_mod
from fastreg.repo.project import Project
from fastreg.repo.statcache import StatCache
from tests.conftest import OLD, Run, age
from tests.helpers import file_id


def tree(root: Path) -> None:
    for folder in ("a", "a/deep/er", "b", "c"):
        for i in range(3):
            p = root / folder / f"f{i}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f"{folder} {i} ".encode() * 50)
    age(root)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many folders status and add read file by file."""
    seen = {"status": 0, "add": 0}
    compare, build_files = scan_mod._Scan.compare, build_mod.Builder._build_files

    def counted_compare(self, *args, **kw):  # type: ignore[no-untyped-def]
        seen["status"] += 1
        return compare(self, *args, **kw)

    def counted_build(self, *args, **kw):  # type: ignore[no-untyped-def]
        seen["add"] += 1
        return build_files(self, *args, **kw)

    monkeypatch.setattr(scan_mod._Scan, "compare", counted_compare)
    monkeypatch.setattr(build_mod.Builder, "_build_files", counted_build)
    return seen


def test_nothing_changed_reads_no_folder_and_writes_nothing(project: Path, run: Run,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tree(project / "ds")
    run("add", "ds")
    seen = count_reads(monkeypatch)
    stat_file = StatCache(Project.find().state_dir, "ds").path
    before = os.stat(stat_file)
    out, _ = run("status")
    assert "up to date" in out and seen["status"] == 0  # add's records hold: no folder read
    after = os.stat(stat_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # and not rewritten
    meta = (project / "ds.fastreg").read_text()
    run("add", "ds")
    assert seen["add"] == 0 and (project / "ds.fastreg").read_text() == meta


def fresh_add_equals(project: Path, tmp_path: Path, run: Run) -> None:
    other = tmp_path / "fresh"
    other.mkdir()
    shutil.copytree(project / "ds", other / "ds", symlinks=True)
    cwd = os.getcwd()
    try:
        os.chdir(other)
        run("init", "--no-scm")
        run("add", "ds")
    finally:
        os.chdir(cwd)
    assert (other / "ds.fastreg").read_text() == (project / "ds.fastreg").read_text()


def same_size_new_content(ds: Path) -> None:
    p = ds / "a/deep/er/f1.bin"
    p.write_bytes(p.read_bytes().upper())
    os.utime(p, (OLD + 7, OLD + 7))


def mode(ds: Path) -> None:
    (ds / "b/f0.bin").chmod(0o755)


def new_file_deep_down(ds: Path) -> None:
    p = ds / "a/deep/er/new.bin"
    p.write_bytes(b"new")
    os.utime(p, (OLD, OLD))


def folder_gone(ds: Path) -> None:
    shutil.rmtree(ds / "a/deep")


def renamed(ds: Path) -> None:
    os.rename(ds / "c/f0.bin", ds / "c/g0.bin")


def odd_entry(ds: Path) -> None:
    (ds / "b/link").symlink_to(ds / "a")  # a link to a folder: left out, and add says so


@pytest.mark.parametrize("status_first", [True, False])
@pytest.mark.parametrize("change", [same_size_new_content, mode, new_file_deep_down, folder_gone, renamed,
                                    odd_entry])
def test_every_change_is_seen_and_add_records_what_a_fresh_add_does(
        project: Path, tmp_path: Path, run: Run, change: Callable[[Path], None], status_first: bool) -> None:
    tree(project / "ds")
    run("add", "ds")
    run("status")
    run("add", "ds")  # the records of add and status in place: the next commands take them
    meta = (project / "ds.fastreg").read_text()
    change(project / "ds")
    if status_first:
        run("status", "-q", rc=1, error=False) if change not in (mode, odd_entry) else run("status")
    run("add", "ds")
    if change is not odd_entry:
        assert (project / "ds.fastreg").read_text() != meta
    fresh_add_equals(project, tmp_path, run)


def test_add_stores_again_what_left_the_cache(project: Path, run: Run) -> None:
    """An object removed by fastreg (gc, check --repair) makes add look at every folder again,
    even where the fingerprint matches, so the object is stored again from the workspace."""
    tree(project / "ds")
    run("add", "ds")
    run("add", "ds")
    cache = Project.find().cache
    victim = project / "ds/c/f2.bin"
    obj = cache.file_path(file_id(victim.read_bytes()))
    obj.chmod(0o644)
    obj.write_bytes(b"rot")
    run("check", "--cache", "--repair", rc=3, error=False)
    assert not obj.exists()
    run("add", "ds")
    assert obj.read_bytes() == victim.read_bytes()
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)


def test_first_status_after_a_pull_reads_no_folder_yet_sees_an_edit(
        project: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh check-out records the fingerprint of each folder whose files all have the stat it
    gave them; a file written after that changes its folder's fingerprint."""
    tree(project / "ds")
    run("add", "ds")
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("push")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "ds"], cwd=project, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    monkeypatch.chdir(clone)
    run("pull", "ds/a")  # a partial pull: only the folders under a/ are whole
    seen = count_reads(monkeypatch)
    out, _ = run("status")
    assert "up to date" in out and seen["status"] == 0  # the folders not pulled are not looked into either
    shutil.rmtree(clone / "ds")
    run("pull")
    seen["status"] = 0
    out, _ = run("status")
    assert "up to date" in out and seen["status"] == 0
    p = clone / "ds/a/deep/er/f2.bin"
    p.chmod(0o644)
    p.write_bytes(p.read_bytes().swapcase())
    out, _ = run("status")
    assert "a/deep/er/f2.bin" in out and seen["status"] == 1  # that folder only


def test_checkout_of_one_file_keeps_the_other_folders_fingerprints(project: Path, run: Run,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """After a check-out that restores one file, the next status reads that file's folder only; a
    folder edited after the check-out is still read."""
    tree(project / "ds")
    run("add", "ds")
    p = project / "ds/b/f1.bin"
    p.write_bytes(b"changed")
    run("checkout", "--force", "ds")
    assert p.read_bytes() == b"b 1 " * 50
    seen = count_reads(monkeypatch)
    out, _ = run("status")
    assert "up to date" in out and seen["status"] == 1  # ds/b only
    q = project / "ds/c/f0.bin"
    q.chmod(0o644)
    q.write_bytes(b"edited")
    out, _ = run("status")
    assert "c/f0.bin" in out and seen["status"] == 2 + 1  # b again (its record is new), and c


def test_checkout_of_an_existing_workspace_plans_from_the_changed_folders(project: Path, run: Run,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan of a check-out into a workspace that has the directory reads only folders whose
    fingerprint changed, honours a subpath, and restores, removes and recreates what changed."""
    tree(project / "ds")
    run("add", "ds")
    (project / "ds/b/f1.bin").write_bytes(b"changed")
    (project / "ds/c/new.bin").write_bytes(b"new")
    (project / "ds/a/f0.bin").unlink()
    seen = count_reads(monkeypatch)
    out, _ = run("checkout", "--force", "ds/c")
    assert seen["status"] == 3  # a, b and c: the folders that changed
    assert not (project / "ds/c/new.bin").exists()
    assert (project / "ds/b/f1.bin").read_bytes() == b"changed" and not (project / "ds/a/f0.bin").exists()
    _, err = run("checkout", "ds", rc=8)  # b/f1.bin's content is nowhere else
    assert "ds/b/f1.bin" in err
    run("checkout", "--force", "ds")
    assert (project / "ds/b/f1.bin").read_bytes() == b"b 1 " * 50
    assert (project / "ds/a/f0.bin").read_bytes() == b"a 0 " * 50
    out, _ = run("status")
    assert "up to date" in out
    _, err = run("checkout", "ds/nothing/here", rc=1)
    assert "not in the tracked directory" in err

"""Many producers, one registry: what a workspace never had is not deleted (a partial check-out, a
killed pull, a shared cache), and metafiles that merge under Git (the merge driver)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from fastreg.objects import tree as tr
from fastreg.repo.project import Project
from tests.test_registry import git


def clone(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, capture_output=True)
    for k, v in (("user.email", "t@example.invalid"), ("user.name", "t")):
        subprocess.run(["git", "config", k, v], cwd=dest, check=True)
    return dest


def tracked(root: Path, target: str) -> dict[str, bytes]:
    """path -> digest of what the committed metafile of `target` records (read from the cache)."""
    project = Project(root)
    meta = project.read_meta(project.target(target))
    return {p: r.digest for p, r in tr.walk(project.cache, meta.digest)}


def registry(tmp_path: Path, project: Path, run, make_images) -> Path:
    """data/ds with 10 folders of 6 images, pushed to a local remote and committed."""
    for i in range(10):
        make_images(project / f"data/ds/{i:02}", train=4, validation=2, start=1 + 10 * i, mean_kb=2)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "data/ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    return project


def test_add_after_a_partial_checkout_keeps_what_was_never_checked_out(tmp_path: Path, project: Path, run,
                                                                      make_images, monkeypatch) -> None:
    registry(tmp_path, project, run, make_images)
    before = tracked(project, "data/ds")
    assert len(before) == 60
    mate = clone(project, tmp_path / "mate")
    monkeypatch.chdir(mate)
    run("fetch")  # every object in the cache: the old rule ("in the cache" = was here) fails
    run("pull", "data/ds/05")
    new = mate / "data/ds/05/new.jpg"
    new.write_bytes(b"a new image")
    out, _ = run("status")
    assert "deleted" not in out
    assert "54 files not in the workspace" in out and "added:     05/new.jpg" in out
    doc = json.loads(run("status", "--json")[0])
    assert doc["targets"][0]["deleted"] == [] and len(doc["targets"][0]["not_pulled"]) == 54
    out, _ = run("add", "data/ds")
    after = tracked(mate, "data/ds")
    assert len(after) == 61 and {p: d for p, d in after.items() if p != "05/new.jpg"} == before
    out, _ = run("diff")
    assert "1 file added" in out and " 0 deleted" in out
    # Status after the add: the never-checked-out files are still "not in the workspace".
    out, _ = run("status")
    assert "54 files not in the workspace" in out and "deleted" not in out
    # A file that was checked out here and then removed is a deletion, also after a status ran
    # (the stat cache it wrote still knows the file was here).
    gone = sorted((mate / "data/ds/05").rglob("*.jpg"))[0]
    gone.unlink()
    run("status")
    out, _ = run("status")
    assert f"deleted:   05/{gone.relative_to(mate / 'data/ds/05').as_posix()}" in out
    run("add", "data/ds")
    assert len(tracked(mate, "data/ds")) == 60 and "05/new.jpg" in tracked(mate, "data/ds")
    # --prune records the workspace exactly, for the user who means it.
    out, _ = run("add", "--prune", "data/ds")
    assert set(tracked(mate, "data/ds")) == {p.relative_to(mate / "data/ds").as_posix()
                                             for p in (mate / "data/ds").rglob("*") if p.is_file()}
    assert len(tracked(mate, "data/ds")) == 6


def test_a_deleted_folder_and_racy_files_are_deletions(tmp_path: Path, project: Path, run, make_images) -> None:
    """Files add or checkout saw just now (too recent for the stat cache to trust) still count as
    having been in the workspace: deleting them, or their whole folder, is a deletion."""
    ds = project / "ds"
    for i in range(3):
        (ds / f"f{i}").mkdir(parents=True)
        for j in range(3):
            (ds / f"f{i}/{j}.txt").write_text(f"{i} {j}")  # fresh mtimes: racy
    run("add", "ds")
    (ds / "f0/0.txt").unlink()
    for p in (ds / "f1").iterdir():
        p.unlink()
    (ds / "f1").rmdir()
    out, _ = run("status")
    assert "deleted:   f0/0.txt" in out and "deleted:   f1/2.txt" in out and "not in the workspace" not in out
    run("add", "ds")
    assert sorted(tracked(project, "ds")) == ["f0/1.txt", "f0/2.txt", "f2/0.txt", "f2/1.txt", "f2/2.txt"]


def test_a_shared_cache_does_not_make_never_pulled_files_deleted(tmp_path: Path, project: Path, run,
                                                                 make_images, monkeypatch) -> None:
    shared = tmp_path / "shared-cache"
    registry(tmp_path, project, run, make_images)
    mate = clone(project, tmp_path / "mate")
    for root in (project, mate):
        with open(root / ".fastreg/config.local", "a") as f:
            f.write(f'[cache]\ndir = "{shared}"\n')
    monkeypatch.chdir(project)
    run("add", "data/ds")  # fills the shared cache
    monkeypatch.chdir(mate)
    run("pull", "data/ds/03")
    (mate / "data/ds/03/extra.txt").write_text("x")
    out, _ = run("status")
    assert "deleted" not in out and "54 files not in the workspace" in out
    run("add", "data/ds")
    assert len(tracked(mate, "data/ds")) == 61


def test_add_after_a_killed_pull_keeps_the_rest(tmp_path: Path, project: Path, run, make_images,
                                                monkeypatch) -> None:
    """A pull killed midway leaves some files placed and no stat cache committed: the files it
    did not place are not in the workspace, not deleted."""
    registry(tmp_path, project, run, make_images)
    mate = clone(project, tmp_path / "mate")
    monkeypatch.chdir(mate)
    run("pull")
    # As a SIGKILL leaves it: some folders placed, the rest not, and the stat cache not written.
    for i in range(4, 10):
        for p in sorted((mate / f"data/ds/{i:02}").rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        (mate / f"data/ds/{i:02}").rmdir()
    for p in (mate / ".fastreg/state/stat").iterdir():
        os.unlink(p)
    out, _ = run("status")
    assert "deleted" not in out and "36 files not in the workspace" in out
    run("add", "data/ds")
    assert len(tracked(mate, "data/ds")) == 60

"""The local cache end to end: cache types that protect it, a shared cache.dir, gc, corrupt objects."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import file_id, files_under


def test_hardlink_and_symlink_cache_types_protect_the_cache(project: Path, run, make_images) -> None:
    for kind in ("hardlink", "symlink"):
        (project / ".fastreg/config").write_text(f'[cache]\ntype = "{kind}"\n')
        ds = project / kind
        make_images(ds, train=4, validation=2)
        original = files_under(ds)
        run("add", kind)
        f = ds / "data/train/cats/cat.0001.jpg"
        obj_digest = file_id(original["data/train/cats/cat.0001.jpg"]).hex()
        obj = project / ".fastreg/cache/files" / obj_digest[:2] / obj_digest[2:]
        if kind == "hardlink":
            assert os.stat(f).st_ino == os.stat(obj).st_ino
        else:
            assert f.is_symlink() and f.resolve() == obj.resolve()
        assert not os.stat(f).st_mode & 0o222  # read-only: an edit cannot corrupt the cache
        f.unlink()
        run("checkout", kind)
        assert files_under(ds) == original
        out, _ = run("status", kind)
        assert "up to date" in out


def test_shared_cache_dir(tmp_path: Path, project: Path, run, make_images) -> None:
    shared = tmp_path / "shared-cache"
    (project / ".fastreg/config").write_text(f'[cache]\ndir = "{shared}"\n')
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    assert len(list((shared / "files").rglob("*"))) >= 6
    assert not any(p.is_file() for p in (project / ".fastreg/cache/files").rglob("*"))


def test_gc_on_a_shared_cache_keeps_the_other_projects_data(tmp_path: Path, project: Path, run, make_images,
                                                            monkeypatch) -> None:
    shared = tmp_path / "shared-cache"
    config = f'[cache]\ndir = "{shared}"\n'
    (project / ".fastreg/config").write_text(config)
    make_images(project / "a-data", train=4, validation=0)
    run("add", "a-data")
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    monkeypatch.chdir(other)
    run("init")
    (other / ".fastreg/config").write_text(config)
    make_images(other / "b-data", train=0, validation=4, start=300)
    run("add", "b-data")
    b_files = {p.read_bytes() for p in (other / "b-data").rglob("*.jpg")}
    monkeypatch.chdir(project)
    (project / "a-data/data/train/cats/cat.0001.jpg").unlink()
    run("add", "a-data")  # cat.0001 is now garbage: no project refers to it
    out, _ = run("gc", "-w", "--grace", "0")
    assert "Removed 1 file " in out and "1 other project sharing the cache" in out
    shutil.rmtree(other / "b-data")
    monkeypatch.chdir(other)
    run("checkout")  # every object of the other project is still in the shared cache
    assert {p.read_bytes() for p in (other / "b-data").rglob("*.jpg")} == b_files
    # the default grace leaves recent objects of a shared cache alone
    (other / "b-data/data/validation/cats/cat.0300.jpg").unlink()
    run("add", "b-data")
    out, _ = run("gc", "-w")
    assert "Removed 0 files" in out and "recent objects of the shared cache alone" in out
    # a project that is gone is pruned from the cache's registry, and protects nothing
    shutil.rmtree(other)
    monkeypatch.chdir(project)
    out, _ = run("gc", "-w", "--grace", "0")
    assert "other project" not in out and "Removed 4 files" in out
    assert len(list((shared / "projects").iterdir())) == 1


def test_corrupt_cache_object_is_not_checked_out(project: Path, run, make_images) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    victim = project / "ds/data/train/cats/cat.0001.jpg"
    digest = file_id(victim.read_bytes()).hex()
    obj = project / ".fastreg/cache/files" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"bit rot")
    victim.unlink()
    (project / "ds/data/train/dogs/dog.0001.jpg").unlink()
    _, err = run("checkout", rc=3)
    assert digest[2:] in err and "corrupt" in err and f"for {victim} is corrupt" in err  # the file, not a temp
    assert not victim.exists()
    assert (project / "ds/data/train/dogs/dog.0001.jpg").exists()  # the healthy file was restored


def test_gc_workspace_and_all_commits(project: Path, run, make_images) -> None:
    ds = project / "ds"
    make_images(ds, train=4, validation=2)
    run("add", "ds")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "v1"], check=True)
    old = ds / "data/train/cats/cat.0001.jpg"
    old_digest = file_id(old.read_bytes()).hex()
    old_obj = project / ".fastreg/cache/files" / old_digest[:2] / old_digest[2:]
    old.unlink()
    run("add", "ds")
    out, _ = run("gc", "--all-commits")
    assert old_obj.exists()  # still used by the v1 commit
    out, _ = run("gc", "--workspace")  # v1 needs it and no remote holds it: the last copy stays
    assert "Kept 1 file" in out and "no remote is configured" in out and old_obj.exists()
    out, _ = run("gc", "--workspace", "--drop-unpushed")
    assert "Removed 1 file " in out
    assert not old_obj.exists()
    out, _ = run("status")
    assert "up to date" in out
    _, err = run("gc", rc=2)
    assert "--workspace" in err

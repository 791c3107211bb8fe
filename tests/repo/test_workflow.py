"""add, status and checkout end to end: metafiles, versions, what each command reads."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fastreg.objects import metafile
from tests.conftest import OLD, age
from tests.helpers import file_id, files_under


def test_add_writes_metafile_and_gitignore(project: Path, run, make_images) -> None:
    total = make_images(project / "use-cases" / "cats-dogs")
    out, _ = run("add", "use-cases/cats-dogs")
    assert "Added use-cases/cats-dogs.fastreg (60 files" in out
    meta = metafile.loads((project / "use-cases" / "cats-dogs.fastreg").read_text(), "x")
    assert (meta.kind, meta.files, meta.size, meta.path) == ("dir", 60, total, "cats-dogs")
    assert "/cats-dogs" in (project / "use-cases" / ".gitignore").read_text().splitlines()
    # git sees the metafile but not the data
    st = subprocess.run(
        ["git", "status", "--porcelain", "-uall"], capture_output=True, text=True, check=True
    ).stdout
    assert "use-cases/cats-dogs.fastreg" in st and "cat.0001.jpg" not in st
    # adding again with nothing changed keeps the metafile byte for byte
    before = (project / "use-cases" / "cats-dogs.fastreg").read_bytes()
    out, _ = run("add", "use-cases/cats-dogs")
    assert "Unchanged" in out
    assert (project / "use-cases" / "cats-dogs.fastreg").read_bytes() == before
    assert (project / "use-cases" / ".gitignore").read_text().count("/cats-dogs") == 1


def test_same_content_same_digest_anywhere(tmp_path: Path, project: Path, run, make_images) -> None:
    make_images(project / "a")
    make_images(project / "b")
    run("add", "a", "b")
    da = metafile.loads((project / "a.fastreg").read_text(), "a").digest
    db = metafile.loads((project / "b.fastreg").read_text(), "b").digest
    assert da == db


def test_status_reports_added_modified_deleted(project: Path, run, make_images) -> None:
    make_images(project / "ds")
    run("add", "ds")
    out, _ = run("status")
    assert "up to date" in out
    (project / "ds/data/train/cats/cat.0001.jpg").unlink()
    with open(project / "ds/data/train/dogs/dog.0002.jpg", "ab") as f:
        f.write(b"edit")
    (project / "ds/data/new.txt").write_text("new")
    out, _ = run("status", "ds")
    assert "added:     data/new.txt" in out
    assert "modified:  data/train/dogs/dog.0002.jpg" in out
    assert "deleted:   data/train/cats/cat.0001.jpg" in out
    out, _ = run("status", "ds.fastreg")  # the metafile names the target too
    assert "data/new.txt" in out


def test_checkout_restores_and_protects_local_changes(project: Path, run, make_images) -> None:
    make_images(project / "ds")
    original = files_under(project / "ds")
    run("add", "ds")
    (project / "ds/data/train/cats/cat.0001.jpg").unlink()
    edited = project / "ds/data/train/dogs/dog.0002.jpg"
    edited.write_bytes(b"local edit")
    _, err = run("checkout", rc=8)  # a conflict: its own exit code
    assert "dog.0002.jpg" in err and "--force" in err
    assert not (project / "ds/data/train/cats/cat.0001.jpg").exists()  # refused before touching anything
    run("checkout", "--force")
    assert files_under(project / "ds") == original
    out, _ = run("status")
    assert "up to date" in out


def test_add_new_version_then_checkout_between_versions(project: Path, run, make_images) -> None:
    ds = project / "ds"
    make_images(ds)
    v1 = files_under(ds)
    run("add", "ds")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "v1"], check=True)
    subprocess.run(["git", "tag", "v1"], check=True)
    make_images(ds, train=20, validation=0, start=100)
    v2 = files_under(ds)
    assert len(v2) == len(v1) + 20
    out, _ = run("add", "ds")
    assert "Updated ds.fastreg (80 files" in out
    subprocess.run(["git", "commit", "-qam", "v2"], check=True)
    subprocess.run(["git", "checkout", "-q", "v1"], check=True)
    out, _ = run("checkout")
    assert "20 removed" in out  # v2-only files are in the cache: removed without --force
    assert files_under(ds) == v1
    subprocess.run(["git", "checkout", "-q", "main"], check=True)
    run("checkout")
    assert files_under(ds) == v2


def test_single_large_file(project: Path, run) -> None:
    model = project / "model.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    model.write_bytes(data)
    os.chmod(model, 0o755)
    run("add", "model.bin")
    meta = metafile.loads((project / "model.bin.fastreg").read_text(), "m")
    assert (meta.kind, meta.size, meta.files, meta.executable) == ("file", len(data), 1, True)
    assert meta.digest == file_id(data)
    model.write_bytes(b"changed")
    out, _ = run("status")
    assert "model.bin" in out and "modified" in out
    run("checkout", "--force", "model.bin")
    assert model.read_bytes() == data
    assert os.stat(model).st_mode & stat.S_IXUSR


def test_second_add_and_status_read_no_file_contents(project: Path, run, make_images, hashed) -> None:
    make_images(project / "ds")
    run("add", "ds")
    hashed.clear()
    run("add", "ds")
    run("status")
    assert hashed == []
    target = project / "ds/data/train/cats/cat.0003.jpg"
    target.write_bytes(b"new content")
    age(project / "ds")
    run("status")
    run("add", "ds")
    # Only the edited file is read (by status, then by add, which must also copy it to the cache).
    assert {Path(p).name for p in hashed} == {"cat.0003.jpg"}


@pytest.mark.parametrize("kind", ["copy", "reflink"])
def test_status_after_checkout_reads_nothing_and_sees_later_edits(project: Path, run, make_images, hashed,
                                                                  monkeypatch, kind: str) -> None:
    if kind == "reflink":  # this filesystem has no reflink: a plain copy stands in for the clone ioctl
        from fastreg.repo.cache import Cache

        monkeypatch.setattr(Cache, "_reflink", staticmethod(lambda src, dst: shutil.copyfile(src, dst)))
    ds = project / "ds"
    make_images(ds)
    run("add", "ds")
    shutil.rmtree(ds)
    run("checkout")  # a fresh check-out (as after a clone and pull)
    edited = ds / "data/train/dogs/dog.0002.jpg"
    edited.write_bytes(b"local edit")
    age(ds)
    run("checkout", "--force")  # the comparing path puts one file back
    hashed.clear()
    out, _ = run("status")
    assert "up to date" in out
    assert hashed == []  # the files check-out wrote are trusted by their stat at once
    # A same-size rewrite right after the check-out (settle() covers one in the same tick).
    for path in (edited, ds / "data/train/cats/cat.0001.jpg"):
        content = path.read_bytes()
        path.write_bytes(bytes([content[0] ^ 1]) + content[1:])
    out, _ = run("status")
    assert "modified:  data/train/dogs/dog.0002.jpg" in out
    assert "modified:  data/train/cats/cat.0001.jpg" in out


def test_settled_stat_differs_after_any_later_write(tmp_path: Path) -> None:
    """What checkout records for a file it wrote must not match the file after a later write,
    even one in the same timestamp tick: settle() moves the mtime strictly before the write's
    own. (Kernels with multigrain timestamps, 6.13+, also stamp a write that follows a stat
    with a fresh time; older ones and other filesystems reuse the tick's coarse time.)"""
    from fastreg.repo.statcache import settle

    for i in range(20):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"a" * 100)
        written = os.stat(f)
        key = settle(f)
        assert key == (written.st_ino, written.st_size, key[2]) and key[2] < written.st_mtime_ns
        with open(f, "r+b") as fh:  # same inode, same size
            fh.write(b"b")
        st = os.stat(f)
        assert (st.st_ino, st.st_size) == key[:2] and st.st_mtime_ns > key[2]


def test_add_inside_tracked_dir_and_overlap(project: Path, run, make_images) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    _, err = run("add", "ds/data/train", rc=1)
    assert "inside the tracked directory ds" in err
    (project / "outer").mkdir()
    (project / "outer/inner").mkdir()
    (project / "outer/inner/f").write_text("x")
    run("add", "outer/inner")
    _, err = run("add", "outer", rc=1)
    assert "contains the tracked path outer/inner" in err


def test_single_file_edit_after_status_is_seen(project: Path, run) -> None:
    """A status records the file in the stat cache; a later edit must still show, and checkout
    must restore the recorded version (os.stat_result is a tuple too: the stat key must be its
    inode, size and mtime, not its first three items)."""
    model = project / "model.bin"
    model.write_bytes(b"weights v1")
    os.utime(model, (OLD, OLD))
    run("add", "model.bin")
    run("status")
    model.write_bytes(b"weights v2, longer")
    out, _ = run("status")
    assert "model.bin:\n    modified" in out
    run("checkout", "--force", "model.bin")
    assert model.read_bytes() == b"weights v1"


def test_state_of_an_older_project_moves_from_tmp_to_state(project: Path, run, make_images, hashed) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    fastreg_dir = project / ".fastreg"
    (fastreg_dir / "state").rename(fastreg_dir / "tmp")  # as an older fastreg left it
    (fastreg_dir / ".gitignore").write_text("/config.local\n/cache/\n/tmp/\n/lock\n")
    hashed.clear()
    out, _ = run("status")
    assert "up to date" in out and hashed == []  # the stat cache came along
    assert (fastreg_dir / "state/stat").is_dir() and not (fastreg_dir / "tmp").exists()
    assert "/state/" in (fastreg_dir / ".gitignore").read_text().split()
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", ".fastreg"], cwd=project,
                            capture_output=True, text=True).stdout
    assert "!! .fastreg/state/" in status

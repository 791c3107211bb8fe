"""The producer workflow through the real CLI entry point: init, add, status, checkout, gc."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import xxhash

from fastreg.objects import metafile
from tests.conftest import OLD, age
from tests.helpers import files_under


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
    assert meta.digest == xxhash.xxh3_128_digest(data)
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


def test_hardlink_and_symlink_cache_types_protect_the_cache(project: Path, run, make_images) -> None:
    for kind in ("hardlink", "symlink"):
        (project / ".fastreg/config").write_text(f'[cache]\ntype = "{kind}"\n')
        ds = project / kind
        make_images(ds, train=4, validation=2)
        original = files_under(ds)
        run("add", kind)
        f = ds / "data/train/cats/cat.0001.jpg"
        obj_digest = xxhash.xxh3_128_digest(original["data/train/cats/cat.0001.jpg"]).hex()
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
    digest = xxhash.xxh3_128_digest(victim.read_bytes()).hex()
    obj = project / ".fastreg/cache/files" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"bit rot")
    victim.unlink()
    (project / "ds/data/train/dogs/dog.0001.jpg").unlink()
    _, err = run("checkout", rc=3)
    assert digest[2:] in err and "corrupt" in err and f"for {victim} is corrupt" in err  # the file, not a temp
    assert not victim.exists()
    assert (project / "ds/data/train/dogs/dog.0001.jpg").exists()  # the healthy file was restored


def test_remote_urls_are_checked_when_they_are_set(project: Path, run) -> None:
    run("remote", "add", "store", "s3://bucket/reg")
    _, err = run("remote", "modify", "store", "endpoint_url", "127.0.0.1:8333", rc=2)
    assert "http(s)://HOST" in err
    _, err = run("remote", "modify", "store", "url", "gcs://bucket", rc=2)
    assert "unsupported remote URL scheme" in err
    run("remote", "modify", "store", "endpoint_url", "http://127.0.0.1:8333")
    out, _ = run("remote", "list")
    assert "s3://bucket/reg" in out and "endpoint_url=http://127.0.0.1:8333" in out
    assert not (project / "gcs:").exists()


def test_gc_workspace_and_all_commits(project: Path, run, make_images) -> None:
    ds = project / "ds"
    make_images(ds, train=4, validation=2)
    run("add", "ds")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "v1"], check=True)
    old = ds / "data/train/cats/cat.0001.jpg"
    old_digest = xxhash.xxh3_128_digest(old.read_bytes()).hex()
    old_obj = project / ".fastreg/cache/files" / old_digest[:2] / old_digest[2:]
    old.unlink()
    run("add", "ds")
    out, _ = run("gc", "--all-commits")
    assert old_obj.exists()  # still used by the v1 commit
    out, _ = run("gc", "--workspace")
    assert "Removed 1 file " in out
    assert not old_obj.exists()
    out, _ = run("status")
    assert "up to date" in out
    _, err = run("gc", rc=2)
    assert "--workspace" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["add", "../outside"], "outside the project"),
        (["add", ".fastreg/config"], "inside .fastreg/"),
        (["add", "missing"], "no such file"),
        (["status", "missing"], "not tracked"),
        (["checkout", "missing"], "not tracked"),
        (["frobnicate"], "invalid choice"),
        (["add"], "required"),
        (["add", "-j", "0", "x"], "jobs"),
        (["remote", "add", "r", "gs://bucket/reg"], "unsupported remote URL scheme 'gs://'"),
        (["remote", "add", "r", "file:///srv/reg"], "give its path"),
        (["remote", "add", "r", "s3://b/reg"], "not an S3 URL"),
        (["remote", "add", "r", "https:///reg"], "no host"),
    ],
)
def test_bad_input_is_one_error_line(project: Path, run, args: list[str], needle: str) -> None:
    (project.parent / "outside").mkdir(exist_ok=True)
    usage = args[0] in ("frobnicate", "remote") or "-j" in args or args == ["add"]
    _, err = run(*args, rc=2 if usage else 1)
    assert needle in err


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


def test_corrupt_metafile(project: Path, run, make_images) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    meta = project / "ds.fastreg"
    meta.write_text(meta.read_text().replace("digest = ", "digest = 12"))
    _, err = run("status", rc=1)
    assert "ds.fastreg" in err and "invalid metafile" in err
    meta.write_text("this is [not toml")
    _, err = run("checkout", rc=1)
    assert "ds.fastreg" in err


def test_init_needs_git_unless_no_scm(tmp_path: Path, monkeypatch, run) -> None:
    d = tmp_path / "plain"
    d.mkdir()
    monkeypatch.chdir(d)
    _, err = run("init", rc=1)
    assert "not inside a Git work tree" in err and "--no-scm" in err
    run("init", "--no-scm")
    assert (d / ".fastreg/config").exists()
    out, _ = run("init", "--no-scm")  # idempotent: nothing to add without Git
    assert "already" in out and "Git set-up" not in out
    (d / "x").write_text("x")
    run("add", "x")
    monkeypatch.chdir(tmp_path)
    _, err = run("status", rc=1)
    assert "fastreg init" in err


def test_symlinked_files_inside_a_tracked_dir(project: Path, run) -> None:
    (project / "real.bin").write_bytes(os.urandom(5000))
    for kind in ("copy", "hardlink"):
        (project / ".fastreg/config").write_text(f'[cache]\ntype = "{kind}"\n')
        ds = project / f"ds-{kind}"
        ds.mkdir()
        (ds / "own.txt").write_text("own")
        (ds / "link.bin").symlink_to(project / "real.bin")
        run("add", ds.name)
        meta = metafile.loads((project / f"{ds.name}.fastreg").read_text(), "m")
        assert meta.files == 2 and meta.size == 5003


def test_symlinks_to_folders_and_broken_links_are_left_out_and_reported(project: Path, run) -> None:
    ds = project / "ds"
    (ds / "sub").mkdir(parents=True)
    (ds / "sub/a.txt").write_text("a")
    (project / "elsewhere").mkdir()
    (project / "elsewhere/big.bin").write_bytes(b"not part of ds")
    (ds / "to-folder").symlink_to(project / "elsewhere")
    (ds / "loop").symlink_to(ds)
    (ds / "broken").symlink_to(project / "no-such-file")
    out, err = run("add", "ds")
    assert "Added ds.fastreg (1 file," in out
    assert err.startswith("warning: ds: left out 3 entries that are not a file or folder: ") and err.count("\n") == 1
    assert "broken (broken symlink)" in err and "to-folder (symlink to a folder (not followed))" in err
    out, _ = run("status")
    assert "up to date" in out  # status walks the same way: nothing "added"
    _, err = run("-q", "add", "ds")
    assert err == ""


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


def test_names_up_to_the_filesystem_limit(tmp_path: Path, project: Path, run, monkeypatch) -> None:
    """A 255-byte file name inside a tracked directory survives add, checkout, push and pull
    (temp names are cut to fit); a target whose metafile name cannot fit is refused clearly."""
    ds = project / "ds"
    ds.mkdir()
    long_ascii = "a" * 251 + ".jpg"
    long_utf8 = "é" * 125 + ".bin"  # 254 bytes: a cut must not split a character
    (ds / long_ascii).write_bytes(b"x" * 1000)
    (ds / long_utf8).write_bytes(b"y" * 300_000)  # several chunks
    age(ds)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    (ds / long_ascii).unlink()
    run("checkout")
    assert (ds / long_ascii).read_bytes() == b"x" * 1000
    run("push")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "long names"], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    monkeypatch.chdir(clone)
    run("pull")
    assert (clone / "ds" / long_utf8).read_bytes() == b"y" * 300_000
    monkeypatch.chdir(project)
    single = "b" * 250
    (project / single).write_text("too long for a metafile beside it")
    _, err = run("add", single, rc=1)
    assert "too long to be tracked on its own" in err


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

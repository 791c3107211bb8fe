"""Bad input to the workspace verbs: one error line, nothing half-written; odd files and names."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fastreg.objects import metafile
from tests.conftest import age


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
        (["remote", "add", "r", "hdfs://namenode/reg"], "unsupported remote URL scheme 'hdfs://'"),
        (["remote", "add", "r", "azure://Bad_Name/reg"], "not an Azure URL"),
        (["remote", "add", "r", "ssh://host"], "not an SSH URL"),
        (["remote", "add", "r", "gs://b/reg"], "not a GCS URL"),
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

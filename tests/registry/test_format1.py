"""A registry written before format 2 (XXH3-128 digests, version-1 index segments, remote format 1:
fixtures/format1.tar.xz, made by make_format1_fixture.py with fastreg at a290140) is read by
every consumer path, byte for byte; its producer moves to format 2 with the next `add`, and a
history of format-1 tags and format-2 commits keeps working, `diff` reporting real changes only."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from fastreg.objects import metafile
from tests.helpers import files_under, git
from tests.registry.make_format1_fixture import files

FIXTURE = Path(__file__).parent / "fixtures" / "format1.tar.xz"


def version(v: int, under: str = "") -> dict[str, bytes]:
    """What the fixture holds at v1 (1) or v1.1 (2), relative to `under`."""
    prefix = under.rstrip("/") + "/" if under else ""
    return {k[len(prefix):]: d for k, d in files(v).items() if k.startswith(prefix)}


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """The fixture's registry (a Git repository whose default remote is ../remote)."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    reg = tmp_path / "registry"
    git(reg, "checkout", "-q", "-f", "main")  # the work tree: metafiles and .fastreg/config
    return reg


def test_the_fixture_is_format_1(old: Path) -> None:
    meta = metafile.loads((old / "data.fastreg").read_text(), "data.fastreg")
    assert len(meta.digest) == 16 and "format = 1" in (old / "data.fastreg").read_text()
    assert (old.parent / "remote" / "fastreg-remote.toml").read_text() == "format = 1\n"
    assert all(len(p.name) == 32 for p in (old.parent / "remote" / "index").iterdir())


def test_every_consumer_path_reads_format_1(old: Path, consumer: Path, run, tmp_path: Path) -> None:
    url = str(old)
    for rev, v in (("v1", 1), ("v1.1", 2)):
        out = tmp_path / f"get-{rev}"
        run("get", url, "data", "-o", str(out), "--rev", rev)
        assert files_under(out) == version(v, "data")
        run("get", url, "model.bin", "-o", str(tmp_path / f"model-{rev}"), "--rev", rev)
        assert (tmp_path / f"model-{rev}").read_bytes() == files(v)["model.bin"]
    listed = json.loads(run("list", url, "data", "-R", "--rev", "v1", "--json")[0])
    assert sorted(e["path"] for e in listed if e["type"] == "file") == sorted(version(1))[:-1]
    # import at v1, then update to v1.1
    run("import", url, "data", "--rev", "v1")
    assert files_under(consumer / "data") == version(1, "data")
    run("update", "--rev", "v1.1", "data.fastreg")
    assert files_under(consumer / "data") == version(2, "data")
    # the Python API, fsspec and the training datasets
    from fastreg import api

    assert api.read("model.bin", repo=url, rev="v1", mode="rb") == files(1)["model.bin"]
    import fsspec

    fs = fsspec.filesystem("fastreg", repo=url, rev="v1.1")
    assert fs.cat_file("data/cats/001.jpg") == files(2)["data/cats/001.jpg"]
    from fastreg.data import RegistryDataset

    ds = RegistryDataset(url, "data", rev="v1", cache_dir=tmp_path / "samples")
    assert {s.path: s.data for s in (ds[i] for i in range(len(ds)))} == {
        k: d for k, d in files(1).items() if k.startswith("data/")}
    ds.close()
    # diff between the two format-1 tags
    got = json.loads(run("diff", "--repo", url, "v1", "v1.1", "--json")[0])
    assert [c["path"] for c in got["modified"]] == ["data/cats/001.jpg", "model.bin"]
    assert [c["path"] for c in got["added"]] == ["data/dogs/024.jpg"]
    assert [c["path"] for c in got["deleted"]] == ["data/dogs/002.jpg"]


def test_the_producer_moves_to_format_2_and_history_keeps_working(old: Path, tmp_path: Path, run,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(old), str(clone)], check=True)  # beside it: ../remote is its remote
    git(clone, "config", "user.email", "t@fastreg.test")
    git(clone, "config", "user.name", "t")
    monkeypatch.chdir(clone)
    run("pull")
    assert files_under(clone / "data") == version(2, "data")
    assert "up to date" in run("status")[0]
    run("check")  # every cache object (format 1) against its own digest
    # an older format-1 version checks out (its metafiles from Git, its data from the remote)
    git(clone, "checkout", "-q", "v1", "--", "data.fastreg", "model.bin.fastreg")
    run("pull")
    assert files_under(clone / "data") == version(1, "data")
    git(clone, "checkout", "-q", "main", "--", "data.fastreg", "model.bin.fastreg")
    run("checkout")
    # the next add records format 2: every file hashed again with SHA-256, the same bytes
    image = clone / "data" / "dogs" / "004.jpg"
    image.chmod(0o644)
    image.write_bytes(b"an edited image")
    run("add", "data", "model.bin")
    text = (clone / "data.fastreg").read_text()
    assert "format = 2" in text and len(metafile.loads(text, "data.fastreg").digest) == 32
    run("push")
    assert (old.parent / "remote" / "fastreg-remote.toml").read_text() == "format = 2\n"
    git(clone, "commit", "-qam", "v2: format 2")
    git(clone, "tag", "v2")
    # diff across the formats: the one real change, not every file
    got = json.loads(run("diff", "v1.1", "v2", "--json")[0])
    assert [(c["path"]) for c in got["modified"]] == ["data/dogs/004.jpg"]
    assert got["added"] == got["deleted"] == got["renamed"] == []
    url = str(clone)  # the registry now: format-1 tags and a format-2 commit
    got = json.loads(run("diff", "--repo", url, "v1.1", "v2", "--json")[0])
    assert [(c["path"]) for c in got["modified"]] == ["data/dogs/004.jpg"]
    assert got["added"] == got["deleted"] == []
    # consumers read both formats from one remote
    for rev, want in (("v1", version(1, "data")), ("v2", {**version(2, "data"), "dogs/004.jpg": b"an edited image"})):
        out = tmp_path / f"get-{rev}"
        run("get", url, "data", "-o", str(out), "--rev", rev)
        assert files_under(out) == want
    # a fresh clone (nothing in its cache): diff fetches the old side's bytes to compare them
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(clone), str(fresh)], check=True)
    monkeypatch.chdir(fresh)
    got = json.loads(run("diff", "v1.1", "v2", "--json")[0])
    assert [(c["path"]) for c in got["modified"]] == ["data/dogs/004.jpg"]
    os.chdir(tmp_path)

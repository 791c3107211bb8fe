"""A DVC project read as a registry, against real DVC: registries built by DVC 3 and DVC 2
(installed in their own virtualenvs), every read compared byte for byte with `dvc get` of the
same revision."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.dvctools import DvcProject, commit, git, same_tree


def _remote_object(p: DvcProject, md5: str) -> Path:
    root = p.root.parent / "remote"
    for key in (f"files/md5/{md5[:2]}/{md5[2:]}", f"{md5[:2]}/{md5[2:]}"):
        if (root / key).exists():
            return root / key
    raise AssertionError(f"{md5} not in {root}")


def _out_md5(p: DvcProject, dvcfile: str) -> str:
    import yaml

    return str(yaml.safe_load((p.root / dvcfile).read_text())["outs"][0]["md5"])


# -- get, list: DVC 3, local remote ----------------------------------------------------------
GETS = ["data", "data/train/cats", "data/validation/dogs/dog.0002.jpg", "models/model.bin", "sub/nested/table.csv",
        "pipe/out/summary.txt", "pipe/report.txt", "README.md"]


@pytest.mark.parametrize("rev", ["v1", "v2"])
def test_get_of_every_kind_of_out_equals_dvc_get(reg3: DvcProject, tmp_path: Path, run, rev: str) -> None:
    """A directory out, a folder and a file inside it, a single-file out, an out whose .dvc file is
    in a subfolder, a dvc.lock output (paths relative to dvc.yaml), a cache: false output (in
    Git) and a plain Git file: each is what `dvc get` of the same revision gives."""
    for i, path in enumerate(GETS):
        ours, theirs = tmp_path / f"ours{i}", tmp_path / f"theirs{i}"
        out, _ = run("get", reg3.url, path, "--rev", rev, "-o", str(ours))
        assert "Got" in out
        reg3.get(path, theirs, rev)
        if theirs.is_dir():
            same_tree(ours, theirs)
        else:
            assert ours.read_bytes() == theirs.read_bytes(), path


def test_second_get_downloads_nothing_and_list_learns_sizes(reg3: DvcProject, tmp_path: Path, run) -> None:
    out, _ = run("list", reg3.url, "data/train/cats", "--json")
    assert all(e["size"] is None for e in json.loads(out))  # a DVC manifest records no sizes
    out, _ = run("get", reg3.url, "data", "-o", str(tmp_path / "a"))
    assert "downloaded 0 B" not in out
    out, _ = run("get", reg3.url, "data", "-o", str(tmp_path / "b"))
    assert "downloaded 0 B" in out  # every object converted once is found again by its md5
    same_tree(tmp_path / "a", tmp_path / "b")
    out, _ = run("list", reg3.url, "data/train/cats", "--json")
    entries = json.loads(out)
    assert entries and all(e["size"] == (tmp_path / "a" / e["path"][len("data/"):]).stat().st_size for e in entries)


def test_list_recursive_equals_dvc_list(reg3: DvcProject, run) -> None:
    theirs = reg3.dvc("list", "-R", reg3.url, "--rev", "v2", cwd=reg3.root.parent).split()
    theirs = [p for p in theirs if not (p.endswith((".dvc", ".gitignore", ".dvcignore")))]
    out, _ = run("list", reg3.url, "-R", "--rev", "v2", "--json")
    entries = json.loads(out)
    assert sorted(e["path"] for e in entries if e["type"] == "file") == sorted(theirs)
    tracked = {e["path"]: e for e in entries if e["tracked"]}
    assert tracked["data"]["type"] == "dir" and tracked["data"]["files"] == 43
    assert tracked["models/model.bin"]["size"] == 300_000
    assert "pipe/report.txt" not in tracked and "pipe/out/summary.txt" in tracked  # cache: false is a Git file
    out, _ = run("list", reg3.url)
    lines = out.splitlines()
    assert any(line.endswith(" data/") and line.startswith("*") for line in lines)
    assert not any(".dvc" in line for line in lines)


def test_fastreg_filesystem_and_api_read_a_dvc_registry(reg3: DvcProject, tmp_path: Path) -> None:
    import fsspec

    import fastreg.api

    reference = reg3.get("data", tmp_path / "ref", "v1")
    fs = fsspec.filesystem("fastreg", repo=reg3.url, rev="v1")
    assert sorted(fs.ls("data/train", detail=False)) == ["data/train/cats", "data/train/dogs"]
    found = fs.find("data")
    assert len(found) == 32
    some = found[:5]
    got = fs.cat(some)
    assert all(got[p] == (reference / p[len("data/"):]).read_bytes() for p in some)
    with fs.open("models/model.bin") as f:
        f.seek(1000)
        assert f.read(10) == (reg3.get("models/model.bin", tmp_path / "m", "v1").read_bytes())[1000:1010]
    fs.get("data/validation", str(tmp_path / "val"), recursive=True)
    same_tree(tmp_path / "val", reference / "validation")
    assert fastreg.api.read("sub/nested/table.csv", repo=reg3.url, rev="v1").startswith("0,0\n1,1\n")


# -- import, diff --repo, update, teammate pull: DVC 3 on SeaweedFS ----------------------------
def test_import_update_and_teammate_pull_from_dvc_on_s3(reg3_s3: DvcProject, consumer: Path, tmp_path: Path,
                                                       run, monkeypatch) -> None:
    url = reg3_s3.url
    run("import", url, "data", "--rev", "v1")
    same_tree(consumer / "data", reg3_s3.get("data", tmp_path / "v1", "v1"))
    meta = (consumer / "data.fastreg").read_text()
    assert url in meta and "v1" in meta
    out, _ = run("diff", "--repo", url, "v1", "v2", "--json")
    d = json.loads(out)
    assert [c["path"] for c in d["modified"]] == ["data/train/cats/cat.0001.jpg"]
    assert [c["path"] for c in d["deleted"]] == ["data/train/cats/cat.0002.jpg"]
    assert len(d["added"]) == 12
    run("status", "-q")
    git("add", "-A", cwd=consumer)
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "import", cwd=consumer)

    # A teammate clones the consumer and pulls: the DVC remote at rev_lock, converted again.
    mate = tmp_path / "mate"
    git("clone", "-q", str(consumer), str(mate), cwd=tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "mate-xdg"))
    monkeypatch.chdir(mate)
    run("pull")
    same_tree(mate / "data", tmp_path / "v1")

    monkeypatch.chdir(consumer)
    run("update", "data.fastreg", "--rev", "v2")
    same_tree(consumer / "data", reg3_s3.get("data", tmp_path / "v2", "v2"))
    assert "v2" in (consumer / "data.fastreg").read_text()
    run("status", "-q")  # exit 0: the workspace is what the updated metafile records


def test_import_of_a_single_file_and_a_pipeline_output(reg3: DvcProject, consumer: Path, tmp_path: Path,
                                                       run) -> None:
    run("import", reg3.url, "models/model.bin", "--rev", "v1")
    run("import", reg3.url, "pipe/out/summary.txt", "-o", "summary.txt", "--rev", "v1")
    assert (consumer / "model.bin").read_bytes() == reg3.get("models/model.bin", tmp_path / "m", "v1").read_bytes()
    assert (consumer / "summary.txt").read_bytes() == \
        reg3.get("pipe/out/summary.txt", tmp_path / "s", "v1").read_bytes()
    (consumer / "model.bin").unlink()
    run("checkout")
    assert (consumer / "model.bin").read_bytes() == (tmp_path / "m").read_bytes()


# -- DVC 2: legacy md5 -----------------------------------------------------------------------
def test_dvc2_registry_with_crlf_text(reg2: DvcProject, consumer: Path, tmp_path: Path, run) -> None:
    """DVC 2 recorded the md5 of a text file as if its CRLFs were LF; the bytes fastreg writes
    are the file's own (CRLF kept), verified against that md5."""
    for path in ("texts", "notes.txt"):
        ours, theirs = tmp_path / f"ours-{path}", tmp_path / f"theirs-{path}"
        run("get", reg2.url, path, "-o", str(ours))
        reg2.get(path, theirs, "v1")
        if theirs.is_dir():
            same_tree(ours, theirs)
            same_tree(ours, reg2.root / path)  # the files DVC 2 added
        else:
            assert ours.read_bytes() == theirs.read_bytes() == (reg2.root / path).read_bytes()
    assert (tmp_path / "ours-notes.txt").read_bytes() == b"note\r\n" * 30
    assert b"\r\n" in (tmp_path / "ours-texts" / "crlf.txt").read_bytes()
    run("import", reg2.url, "texts")
    same_tree(consumer / "texts", tmp_path / "theirs-texts")


# -- damage and bad input --------------------------------------------------------------------
def test_a_flipped_byte_in_a_remote_object_fails_naming_the_path(own3: DvcProject, tmp_path: Path, run) -> None:
    md5 = _out_md5(own3, "models/model.bin.dvc")
    obj = _remote_object(own3, md5)
    data = bytearray(obj.read_bytes())
    data[100] ^= 1
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))
    _, err = run("get", own3.url, "models/model.bin", "-o", str(tmp_path / "m"), rc=3)
    assert "models/model.bin" in err and md5 in err
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob("m*"))


def test_a_manifest_edited_by_hand_is_refused(own3: DvcProject, tmp_path: Path, run) -> None:
    md5 = _out_md5(own3, "data.dvc").removesuffix(".dir")
    obj = _remote_object(own3, md5 + ".dir")
    entries = json.loads(obj.read_text())
    entries[0]["md5"], entries[1]["md5"] = entries[1]["md5"], entries[0]["md5"]
    os.chmod(obj, 0o644)
    obj.write_text(json.dumps(entries))
    _, err = run("get", own3.url, "data", "-o", str(tmp_path / "d"), rc=1)
    assert "data" in err and f"{md5}.dir" in err
    assert not (tmp_path / "d").exists()
    run("list", own3.url, "data", rc=1)


def test_a_missing_object_names_the_path_and_md5(own3: DvcProject, tmp_path: Path, run) -> None:
    md5 = _out_md5(own3, "sub/nested/table.csv.dvc")
    _remote_object(own3, md5).unlink()
    _, err = run("get", own3.url, "sub/nested/table.csv", "-o", str(tmp_path / "t"), rc=1)
    assert "sub/nested/table.csv" in err and md5 in err and "not in the DVC remote" in err
    assert not (tmp_path / "t").exists()


def test_a_remote_kind_fastreg_does_not_read_is_named(own3: DvcProject, tmp_path: Path, run) -> None:
    own3.dvc("remote", "modify", "store", "url", "gdrive://0AIac4JZqHhKmUk9PDA", cwd=own3.root)
    commit(own3, "gdrive")
    _, err = run("get", own3.url, "models/model.bin", "-o", str(tmp_path / "m"), rc=1)
    assert "gdrive" in err and "models/model.bin" in err
    out, _ = run("list", own3.url)  # listing needs no data
    assert "models/" in out


def test_a_dvc_file_that_does_not_parse_is_a_metafile_error_naming_it(own3: DvcProject, tmp_path: Path,
                                                                      run) -> None:
    (own3.root / "models" / "model.bin.dvc").write_text("outs: [ {md5: 12, path: \n")
    commit(own3, "broken")
    _, err = run("list", own3.url, rc=1)
    assert "models/model.bin.dvc" in err
    subprocess.run(["git", "checkout", "-q", "HEAD~1", "--", "models/model.bin.dvc"], cwd=own3.root, check=True)
    (own3.root / "models" / "model.bin.dvc").write_text(
        (own3.root / "models" / "model.bin.dvc").read_text().replace("md5: ", "md5: zz"))
    commit(own3, "bad md5")
    _, err = run("get", own3.url, "models/model.bin", "-o", str(tmp_path / "m"), rc=1)
    assert "models/model.bin.dvc" in err and "md5" in err

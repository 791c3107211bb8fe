"""get, list and diff --repo of a registry by URL: output paths, the list format, hostile URLs,
what a listing reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import files_under, git, make_registry


@pytest.mark.parametrize("url", ["/tmp/a\nb", "bad\x1b[31mred"])
def test_hostile_url_is_one_error_line(tmp_path: Path, run, monkeypatch, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    _, err = run("get", url, "x", rc=1)  # Run checks: exactly one line, starting with "error: "
    assert "\\n" in err or "\\x1b" in err


def test_list_path_is_the_last_field(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(project), "use-cases/cats-dogs/data/train/cats")
    paths = [line.split()[-1] for line in out.splitlines()]
    assert paths == sorted(f"use-cases/cats-dogs/{k}" for k in versions["v2"] if k.startswith("data/train/cats/"))
    out, _ = run("list", str(project), "use-cases")
    [line] = out.splitlines()
    fields = line.split()
    assert fields[-1] == "use-cases/cats-dogs/" and fields[0] == "*" and fields[-2] == str(len(versions["v2"]))


def test_diff_of_the_seed_scenario_project_and_repo(tmp_path: Path, project: Path, run, make_images,
                                                    monkeypatch, user_cache_home: Path) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    added = sorted(f"use-cases/cats-dogs/{k}" for k in versions["v2"] if k not in versions["v1"])
    new_bytes = sum(len(versions["v2"][k[len("use-cases/cats-dogs/"):]]) for k in added)
    doc = json.loads(run("diff", "cats-dogs-v1", "cats-dogs-v2", "--json")[0])
    assert [c["path"] for c in doc["added"]] == added
    assert doc["summary"]["added"] == {"files": len(added), "bytes": new_bytes}
    assert doc["modified"] == doc["deleted"] == doc["renamed"] == []
    # the same from the registry by URL, without a project and without data
    monkeypatch.chdir(tmp_path)
    doc2 = json.loads(run("diff", "--repo", str(project), "cats-dogs-v1", "cats-dogs-v2", "--json")[0])
    assert {k: doc2[k] for k in ("added", "deleted", "modified", "renamed", "summary")} == \
        {k: doc[k] for k in ("added", "deleted", "modified", "renamed", "summary")}
    out, _ = run("diff", "--repo", str(project), "cats-dogs-v1", "cats-dogs-v2", "use-cases/cats-dogs/data/validation")
    assert out.splitlines()[-1] == "0 added, 0 deleted, 0 modified, 0 renamed"
    out, _ = run("diff", "--repo", str(project), "cats-dogs-v1")  # B: the default branch
    assert f"{len(added)} files added" in out
    cache = user_cache_home / "fastreg/cache"
    assert [p for p in (cache / "trees").rglob("*") if p.is_file()]  # trees were read...
    assert not [p for p in (cache / "files").rglob("*") if p.is_file()]  # ...and no data


def test_get_output_paths_and_api_exceptions(tmp_path: Path, project: Path, run, make_images,
                                             monkeypatch) -> None:
    import fastreg.api

    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    url = str(project)
    image = "use-cases/cats-dogs/data/train/cats/cat.0001.jpg"
    want = versions["v2"]["data/train/cats/cat.0001.jpg"]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    run("get", url, image, "-o", "a/b/c.jpg")  # missing parents are made
    assert (out_dir / "a/b/c.jpg").read_bytes() == want
    run("get", url, image, "-o", "a")  # an existing directory: the file goes inside, as cp does
    assert (out_dir / "a/cat.0001.jpg").read_bytes() == want
    _, err = run("get", url, image, "-o", "a", rc=1)
    assert "exists already" in err and "--force" in err
    with pytest.raises(FileNotFoundError):
        fastreg.api.read("use-cases/cats-dogs/data/train/cats/no-such.jpg", repo=url, mode="rb")
    with pytest.raises(FileNotFoundError):
        fastreg.api.read("NO-SUCH.md", repo=url)
    with pytest.raises(IsADirectoryError):
        fastreg.api.read("use-cases/cats-dogs/data/train", repo=url, mode="rb")
    with pytest.raises(IsADirectoryError):
        fastreg.api.read("use-cases", repo=url)


def test_list_of_an_empty_registry_and_of_one_without_remote(tmp_path: Path, project: Path, run, make_images,
                                                             monkeypatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    monkeypatch.chdir(tmp_path)
    _, err = run("list", str(empty), rc=1)
    assert "has no commits yet" in err
    monkeypatch.chdir(project)
    make_images(project / "ds", train=2, validation=0)
    (project / "README.md").write_text("no remote here\n")
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "no remote")
    monkeypatch.chdir(tmp_path)
    for args in ([], ["-R"]):
        out, _ = run("list", str(project), *args)
        assert [line.split()[-1] for line in out.splitlines()] == [".gitattributes", "README.md", "ds/"]
    _, err = run("list", str(project), "ds", rc=1)
    assert "has no default remote" in err


def test_list_of_one_folder_reads_only_its_path(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                                user_cache_home: Path) -> None:
    ds = project / "ds"
    for i, part in enumerate(("a", "b", "c", "d")):
        make_images(ds / part, train=20, validation=20, mean_kb=1, start=1 + 100 * i)  # distinct content
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    monkeypatch.chdir(tmp_path)
    all_nodes = [p for p in (project / ".fastreg/cache/trees").rglob("*") if p.is_file()]
    out, _ = run("list", str(project), "ds/b/data/train/cats")
    assert len(out.splitlines()) == 10
    read = [p for p in (user_cache_home / "fastreg/cache/trees").rglob("*") if p.is_file()]
    assert len(read) == 5, (len(read), len(all_nodes))  # ds, ds/b, data, train, cats: not the other folders
    assert len(all_nodes) > 3 * len(read)


def test_names_add_accepts_every_reader_serves(tmp_path: Path, project: Path, run, monkeypatch,
                                               consumer: Path) -> None:
    """A backslash or a newline in a file name is an ordinary character: add records it and
    list, get, import, update, the Python API, fastreg:// and RegistryDataset all serve it."""
    import json

    import fsspec

    import fastreg.api
    from fastreg.data import RegistryDataset

    names = {"back\\slash.jpg": b"one", "new\nline.jpg": b"two", "-dash.jpg": b"three", "plain.jpg": b"four"}
    monkeypatch.chdir(project)
    for name, data in names.items():
        (project / "imgs" / "cats").mkdir(parents=True, exist_ok=True)
        (project / "imgs" / "cats" / name).write_bytes(data)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "imgs")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "names")
    url = str(project)
    out, _ = run("list", url, "imgs/cats", "--json")
    assert sorted(e["path"] for e in json.loads(out)) == sorted(f"imgs/cats/{n}" for n in names)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    run("get", url, "imgs/cats")
    assert {p.name: p.read_bytes() for p in (out_dir / "cats").iterdir()} == names
    assert fastreg.api.read("imgs/cats/back\\slash.jpg", repo=url, mode="rb") == b"one"
    fs = fsspec.filesystem("fastreg", repo=url)
    assert fs.cat("imgs/cats/new\nline.jpg") == b"two"
    ds = RegistryDataset(url, "imgs", cache_dir=tmp_path / "c")
    assert sorted(s.data for s in (ds[i] for i in range(len(ds)))) == sorted(names.values())
    ds.close()
    monkeypatch.chdir(consumer)
    out, _ = run("import", url, "imgs")
    assert "git add imgs.fastreg .gitignore" in out  # the .gitignore it wrote too
    run("update", "imgs.fastreg")
    assert {p.name: p.read_bytes() for p in (consumer / "imgs/cats").iterdir()} == names


def test_a_registry_with_a_missing_git_object_is_one_error_line(tmp_path: Path, run, monkeypatch) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=reg, check=True)
    (reg / "a.txt").write_text("hi\n")
    (reg / "b.txt").write_text("yo\n")
    git(reg, "add", "-A")
    git(reg, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x")
    monkeypatch.chdir(tmp_path)
    run("list", str(reg))  # the mirror is made while the repository is whole
    mirror = next((Path(os.environ["XDG_CACHE_HOME"]) / "fastreg" / "registries").iterdir())
    blob = subprocess.run(["git", "rev-parse", "HEAD:b.txt"], cwd=reg, capture_output=True, text=True,
                          check=True).stdout.strip()
    for objects in (reg / ".git" / "objects", mirror / "objects"):
        (objects / blob[:2] / blob[2:]).unlink(missing_ok=True)
    _, err = run("list", str(reg), rc=1)
    assert "b.txt: its Git object" in err and "is missing" in err


def test_get_of_a_git_folder_brings_its_files_and_the_tracked_data_in_it(tmp_path: Path, project: Path, run,
                                                                          make_images, monkeypatch) -> None:
    """As `dvc get URL some/git/dir` does, and as the web view's commands offer on every folder."""
    from tests.helpers import files_under

    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    (project / "use-cases" / "NOTES.md").write_text("how the data was made\n")
    git(project, "add", "use-cases/NOTES.md")
    git(project, "commit", "-qm", "notes")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    run("get", str(project), "use-cases")
    got = files_under(out_dir / "use-cases")
    assert got == {"NOTES.md": b"how the data was made\n",
                   **{f"cats-dogs/{k}": v for k, v in versions["v2"].items()}}
    assert not any(k.endswith((".fastreg", ".gitignore")) for k in got)  # the registry's bookkeeping stays
    _, err = run("get", str(project), "use-cases", rc=1)  # ./use-cases exists: no -o, no --force
    assert "exists already" in err


def test_list_marks_imported_data_and_says_where_from(tmp_path: Path, project: Path, consumer: Path, run,
                                                      make_images, monkeypatch) -> None:
    make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs/data/validation", "-o", "val", "--rev", "cats-dogs-v1")
    (consumer / "own.bin").write_bytes(b"own data")
    run("add", "own.bin")
    git(consumer, "add", "-A")
    git(consumer, "commit", "-qm", "an import and data of its own")
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(consumer), "--tracked-only")
    assert [line.split()[0] + " " + line.split()[-1] for line in out.splitlines()] == ["* own.bin", "i val/"]
    doc = json.loads(run("list", str(consumer), "val/cats", "--json")[0])
    assert doc and all(e["import"]["url"] == str(project) and e["import"]["rev"] == "cats-dogs-v1"
                       and e["import"]["path"] == "use-cases/cats-dogs/data/validation/" + e["path"][len("val/"):]
                       for e in doc)
    # the web view's folder page marks it too
    from fastreg.ui.model import Registry

    page = Registry(str(consumer))
    try:
        entries = {e["path"]: e for e in page.folder(None, "")["entries"]}
    finally:
        page.close()
    assert entries["val"]["import"]["url"] == str(project) and entries["own.bin"]["import"] is None
    # its data is read from the registry it came from, by get, fastreg:// and a teammate's import
    run("get", str(consumer), "val/cats", "-o", "got")
    assert files_under(tmp_path / "got") == files_under(project / "use-cases/cats-dogs/data/validation/cats")
    import fsspec

    fs = fsspec.filesystem("fastreg", repo=str(consumer))
    name = sorted(files_under(tmp_path / "got"))[0]
    assert fs.cat(f"val/cats/{name}") == (tmp_path / "got" / name).read_bytes()
    # an import of that import: a teammate's pull reads it from the first registry
    monkeypatch.chdir(project)
    run("import", str(consumer), "val/dogs", "-o", "dogs2")
    want = files_under(project / "dogs2")
    assert want == files_under(project / "use-cases/cats-dogs/data/validation/dogs")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "an import of an import")
    shutil.rmtree(project / "dogs2")
    shutil.rmtree(project / ".fastreg" / "cache")
    run("pull")
    assert files_under(project / "dogs2") == want


def test_diff_of_a_registry_whose_import_moved_reads_each_side_from_its_source(
        tmp_path: Path, project: Path, consumer: Path, run, make_images, monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs/data/train", "-o", "train", "--rev", "cats-dogs-v1")
    git(consumer, "add", "-A")
    git(consumer, "commit", "-qm", "train at v1")
    run("update", "train.fastreg", "--rev", "cats-dogs-v2")
    git(consumer, "commit", "-qam", "train at v2")
    monkeypatch.chdir(tmp_path)
    doc = json.loads(run("diff", "--repo", str(consumer), "HEAD~1", "HEAD", "--json")[0])
    added = sorted("train/" + k[len("data/train/"):] for k in versions["v2"]
                   if k.startswith("data/train/") and k not in versions["v1"])
    assert added and [c["path"] for c in doc["added"]] == added
    assert doc["deleted"] == doc["modified"] == doc["renamed"] == []

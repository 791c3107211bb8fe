"""A project's everyday verbs end to end: partial pulls, status for scripts, config levels, gc's
grace and remote gc across projects, diff, remove and move."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import files_under, git
from tests.registry.test_lifecycle import clone, commit_consumer


def test_partial_pull_status_and_add(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    ds = project / "ds"
    make_images(ds, train=10, validation=10)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    mate = clone(project, tmp_path / "mate")
    monkeypatch.chdir(mate)
    run("pull", "ds/data/validation")
    out, _ = run("status")
    assert "deleted" not in out
    assert "10 files not in the workspace (never pulled here" in out
    assert "up to date" in out  # nothing changed: the rest was never here
    run("-q", "status")
    doc = json.loads(run("status", "--json")[0])
    assert doc["changed"] is False and len(doc["targets"][0]["not_pulled"]) == 10
    out, _ = run("add", "ds")  # keeps what was never here: the version is unchanged
    assert "Unchanged ds.fastreg" in out and "kept 10 files never checked out here" in out
    assert (mate / "ds.fastreg").read_text() == (project / "ds.fastreg").read_text()
    # a file the user deletes (its object is in the cache) is a change
    victim = sorted((mate / "ds/data/validation").rglob("*.jpg"))[0]
    victim.unlink()
    out, _ = run("status")
    assert "deleted:" in out and victim.name in out
    run("-q", "status", rc=1, error=False)
    doc = json.loads(run("status", "--json")[0])
    assert doc["changed"] is True and doc["targets"][0]["deleted"] == [victim.relative_to(mate).as_posix()]
    out, _ = run("add", "--force", "ds")
    assert "(9 files" in out


def test_status_json_and_quiet(project: Path, run, make_images, monkeypatch) -> None:
    make_images(project / "ds", train=4, validation=2)
    (project / "model.bin").write_bytes(b"weights")
    run("add", "ds", "model.bin")
    out, _ = run("-q", "status")
    assert out == ""
    doc = json.loads(run("status", "--json")[0])
    assert doc == {"changed": False, "targets": [
        {"path": "ds", "state": "ok", "added": [], "modified": [], "deleted": [], "not_pulled": []},
        {"path": "model.bin", "state": "ok", "added": [], "modified": [], "deleted": [], "not_pulled": []}]}
    (project / "ds/new.txt").write_text("new")
    (project / "model.bin").write_bytes(b"other weights")
    out, err = run("-q", "status", rc=1, error=False)
    assert out == err == ""
    doc = json.loads(run("status", "--json")[0])
    assert doc["changed"] is True
    assert [(t["path"], t["state"], t["added"], t["modified"]) for t in doc["targets"]] == [
        ("ds", "changed", ["ds/new.txt"], []), ("model.bin", "changed", [], ["model.bin"])]
    # one rule for JSON paths: from the project's root, as diff --json has them
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    diff = json.loads(run("diff", "--json")[0])
    assert [c["path"] for c in diff["added"]] == doc["targets"][0]["added"]
    # -q answers with the exit code: 1 changed, 4 failed (never 1), and not together with --json
    _, err = run("-q", "status", "nowhere", rc=4)
    assert "nowhere" in err
    run("-q", "status", "--json", rc=2)
    # the git add hint is what the user would type here, `--` before a name that looks like an option
    (project / "-n.txt").write_text("dash")
    out, _ = run("add", "--", "-n.txt")
    assert "git add -- -n.txt.fastreg .gitignore" in out
    monkeypatch.chdir(project / "ds")
    out, _ = run("add", "../model.bin")
    assert "git add ../model.bin.fastreg ../.gitignore" in out


def test_config_levels_merge_per_option(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                        seaweed, bucket) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("remote", "add", "-d", "store", f"s3://{bucket}/r")
    run("remote", "modify", "--local", "store", "endpoint_url", seaweed.endpoint)  # kept out of Git
    run("remote", "modify", "--local", "store", "gc_grace", "0")
    run("remote", "add", "--local", "scratch", str(tmp_path / "scratch"))  # a local-only remote
    local = (project / ".fastreg/config.local").read_text()
    assert "\nurl" not in local.split("[remote.store]")[1].split("[")[0]  # the local table names only its options
    out, _ = run("remote", "list")
    assert f"store\ts3://{bucket}/r endpoint_url={seaweed.endpoint} gc_grace=0\t(default)" in out
    out, _ = run("-v", "remote", "list")
    assert f"endpoint_url={seaweed.endpoint} (config.local)" in out and f"s3://{bucket}/r (config.local)" not in out
    run("add", "ds")
    run("push")
    run("push", "-r", "scratch")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    mate = clone(project, tmp_path / "mate")
    monkeypatch.chdir(mate)
    # the clone has no config.local: the teammate sets the endpoint for themselves
    run("remote", "modify", "--local", "store", "endpoint_url", seaweed.endpoint)
    run("pull")
    assert files_under(mate / "ds") == files_under(project / "ds")


def test_gc_grace_and_read_only_remote(tmp_path: Path, project: Path, run, make_images) -> None:
    ds = project / "ds"
    make_images(ds, train=6, validation=0)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    for p in sorted(ds.rglob("*.jpg"))[:5]:
        p.unlink()
    run("add", "ds")
    run("push")
    out, _ = run("gc", "-w", "-r")
    assert "the grace period kept 1 recent pack (" in out
    out, _ = run("gc", "-w", "-r", "--grace", "0")
    assert "freed" in out and "grace period" not in out
    assert "deleted 1 pack" in out or "rewrote 1" in out
    _, err = run("gc", "-w", "-r", "--grace", "soon", rc=2)
    assert "not a duration" in err
    # a read-only remote is refused before the local cache loses anything
    run("remote", "modify", "store", "read_only", "true")
    (ds / "data/train/cats/cat.0002.jpg").unlink(missing_ok=True)
    files_before = sorted((project / ".fastreg/cache/files").rglob("*"))
    for p in sorted(ds.rglob("*.jpg"))[:1]:
        p.unlink()
    run("add", "--force", "ds")
    _, err = run("gc", "-w", "-r", rc=1)
    assert "read-only" in err and "nothing was deleted" in err
    assert sorted((project / ".fastreg/cache/files").rglob("*")) == files_before


def test_diff_edits_deletions_renames_against_the_workspace(project: Path, run, make_images, monkeypatch,
                                                            hashed) -> None:
    ds = project / "ds"
    make_images(ds, train=6, validation=2)
    (project / "model.bin").write_bytes(b"weights v1")
    run("add", "ds", "model.bin")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    out, _ = run("diff")
    assert out.splitlines()[-1] == "0 added, 0 deleted, 0 modified, 0 renamed"
    cats = sorted((ds / "data/train/cats").glob("*.jpg"))
    dogs = sorted((ds / "data/train/dogs").glob("*.jpg"))
    cats[0].write_bytes(b"edited")
    dogs[0].unlink()
    cats[1].rename(ds / "data/renamed.jpg")
    (ds / "new.txt").write_text("new")
    (project / "model.bin").write_bytes(b"weights v2")
    doc = json.loads(run("diff", "--json")[0])
    rel = lambda p: p.relative_to(project).as_posix()  # noqa: E731
    assert [c["path"] for c in doc["modified"]] == sorted([rel(cats[0]), "model.bin"])
    assert [c["path"] for c in doc["deleted"]] == [rel(dogs[0])]
    assert doc["renamed"] == [{"path": "ds/data/renamed.jpg", "old_path": rel(cats[1]),
                               "size": (ds / "data/renamed.jpg").stat().st_size}]
    assert [c["path"] for c in doc["added"]] == ["ds/new.txt"]
    # targets limit it; the metafile's revision is HEAD's until `add`
    doc = json.loads(run("diff", "model.bin", "--json")[0])
    assert [c["path"] for c in doc["modified"]] == ["model.bin"] and not doc["added"]
    run("add", "ds", "model.bin")
    git(project, "commit", "-qam", "v2")
    hashed.clear()
    doc = json.loads(run("diff", "HEAD~1", "HEAD", "--json")[0])
    assert hashed == []  # revision against revision: trees only
    assert doc["summary"]["modified"]["files"] == 2 and doc["summary"]["renamed"]["files"] == 1
    out, _ = run("diff", "HEAD~1", "--md")
    assert "| renamed | " + rel(cats[1]) + " -> ds/data/renamed.jpg |" in out


def test_remove_and_move_round_trip_with_git(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                             hashed) -> None:
    ds = project / "ds"
    make_images(ds, train=4, validation=2)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    before = files_under(ds)
    hashed.clear()
    out, _ = run("move", "ds", "data/images")
    assert "Moved ds -> data/images" in out
    assert files_under(project / "data/images") == before and not ds.exists()
    assert not (project / "ds.fastreg").exists() and (project / "data/images.fastreg").exists()
    assert "/images" in (project / "data/.gitignore").read_text()
    assert not (project / ".gitignore").exists() or "/ds" not in (project / ".gitignore").read_text().split()
    out, _ = run("status")
    assert "up to date" in out
    out, _ = run("push")
    assert "Everything is already in store" in out  # same digest: nothing uploaded again
    assert hashed == []  # nothing hashed again
    git(project, "add", "-A")
    git(project, "commit", "-qm", "moved")
    assert "data/images" not in subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True,
                                               text=True).stdout  # data stays ignored
    mate = clone(project, tmp_path / "mate")
    monkeypatch.chdir(mate)
    run("pull")
    assert files_under(mate / "data/images") == before
    monkeypatch.chdir(project)
    _, err = run("move", "data/images", "data/images/inner", rc=1)
    assert "inside data/images" in err
    out, _ = run("remove", "data/images.fastreg")
    assert not (project / "data/images.fastreg").exists() and files_under(project / "data/images") == before
    assert not (project / "data/.gitignore").exists()
    out, _ = run("status")
    assert "Nothing is tracked yet" in out
    run("add", "data/images")
    run("remove", "--outs", "data/images")
    assert not (project / "data/images").exists()
    _, err = run("remove", "data/images.fastreg", rc=1)
    assert "not tracked" in err


def test_local_remote_paths_in_messages_are_normalized(tmp_path: Path, project: Path, run, make_images) -> None:
    import shutil

    make_images(project / "ds", train=2, validation=0)
    run("remote", "add", "-d", "store", "sub/../../shared-remote")
    run("add", "ds")
    run("push")
    shutil.rmtree(project / ".fastreg/cache")
    shutil.rmtree(tmp_path / "shared-remote/trees")
    shutil.rmtree(project / "ds")
    _, err = run("pull", rc=1)
    assert f"{tmp_path}/shared-remote/trees/" in err and "/../" not in err


def test_remote_gc_keeps_what_other_projects_pushed(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                                    seaweed, bucket) -> None:
    """Two projects push to one remote; A's remote gc (no grace) must not free B's data, until
    B's snapshot is retired."""
    url = f"s3://{bucket}/shared"
    make_images(project / "a-data", train=6, validation=0)
    run("remote", "add", "-d", "store", url)
    run("remote", "modify", "store", "endpoint_url", seaweed.endpoint)
    run("add", "a-data")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "A v1")
    b = tmp_path / "b"
    b.mkdir()
    git(b, "init", "-q")
    monkeypatch.chdir(b)
    run("init")
    run("remote", "add", "-d", "store", url)
    run("remote", "modify", "store", "endpoint_url", seaweed.endpoint)
    make_images(b / "b-data", train=0, validation=6, start=400)
    run("add", "b-data")
    run("push")
    commit_consumer(b, "B v1")
    b_files = files_under(b / "b-data")
    out, _ = run("remote", "projects")
    assert len(out.splitlines()) == 2 and out.count("(this clone)") == 1 and str(b) in out

    monkeypatch.chdir(project)
    (project / "a-data/data/train/cats/cat.0001.jpg").unlink()
    run("add", "a-data")
    run("push")
    out, _ = run("gc", "-w", "-r", "--grace", "0")
    assert "kept what 1 other project pushed there refer to" in out
    mate = clone(b, tmp_path / "b-mate")
    monkeypatch.chdir(mate)
    run("pull")  # B's data survived A's gc
    assert files_under(mate / "b-data") == b_files

    monkeypatch.chdir(b)
    out, _ = run("remote", "retire", "store")  # B's own clone retires itself
    assert "Retired 1 project" in out
    monkeypatch.chdir(mate)
    out, _ = run("remote", "retire", "store", "--older-than", "1d")  # nothing that old
    assert "Retired 0 projects" in out
    out, _ = run("remote", "projects")
    assert len(out.splitlines()) == 1 and out.rstrip().endswith(f":{project}")  # only A is left
    monkeypatch.chdir(project)
    out, _ = run("gc", "-w", "-r", "--grace", "0")
    assert "other project" not in out
    another = clone(b, tmp_path / "b-late")
    monkeypatch.chdir(another)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-xdg"))
    _, err = run("pull", rc=1)
    assert "missing" in err  # retired and collected: B's data is gone, as asked

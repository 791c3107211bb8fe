"""Many producers, one registry: what a workspace never had is not deleted (a partial check-out, a
killed pull, a shared cache), and metafiles that merge under Git (the merge driver)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from fastreg.objects import tree
from fastreg.repo.project import Project
from tests.helpers import file_id, git


def clone(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, capture_output=True)
    for k, v in (("user.email", "t@example.invalid"), ("user.name", "t")):
        subprocess.run(["git", "config", k, v], cwd=dest, check=True)
    return dest


def tracked(root: Path, target: str) -> dict[str, bytes]:
    """path -> digest of what the committed metafile of `target` records (read from the cache)."""
    project = Project(root)
    meta = project.read_meta(project.target(str(root / target)))
    return {p: r.digest for p, r in tree.walk(project.cache, meta.digest)}


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


# -- the merge driver ------------------------------------------------------------------------------
def sh(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    assert (p.returncode == 0) == ok, f"git {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def two_producers(tmp_path: Path, run, make_images, monkeypatch) -> tuple[Path, Path]:
    """Clones A and B of one registry (Git origin + local remote) holding images/ (12 images)."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    a = clone(origin, tmp_path / "A")
    monkeypatch.chdir(a)
    run("init")
    assert "*.fastreg merge=fastreg" in (a / ".gitattributes").read_text()
    make_images(a / "images", train=8, validation=4, mean_kb=2)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "images")
    run("push")
    sh(a, "add", "-A")
    sh(a, "commit", "-qm", "images v1")
    sh(a, "push", "-q", "origin", "main")
    b = clone(origin, tmp_path / "B")
    monkeypatch.chdir(b)
    run("pull")
    return a, b


def produce(root: Path, run, monkeypatch, files: dict[str, bytes], message: str, push_git: bool = True) -> None:
    monkeypatch.chdir(root)
    for rel, body in files.items():
        p = root / "images" / rel
        if body:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(body)
        else:
            p.unlink()
    run("add", "images")
    run("push")
    sh(root, "commit", "-qam", message)
    if push_git:
        sh(root, "push", "-q", "origin", "main")


def test_two_producers_merge_under_git_pull(tmp_path: Path, run, make_images, monkeypatch) -> None:
    a, b = two_producers(tmp_path, run, make_images, monkeypatch)
    victim = sorted((a / "images").rglob("*.jpg"))[0].relative_to(a / "images").as_posix()
    produce(a, run, monkeypatch, {"imgA.jpg": b"from A", "new/a1.jpg": b"A1", victim: b""}, "A adds, deletes one")
    produce(b, run, monkeypatch, {"imgB.jpg": b"from B", "new/b1.jpg": b"B1"}, "B adds", push_git=False)
    sh(b, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")  # the driver merges: no conflict
    want = {p: d for p, d in tracked(a, "images").items()} | {p: d for p, d in tracked(b, "images").items()
                                                              if p in ("imgB.jpg", "new/b1.jpg")}
    assert set(tracked(b, "images")) == set(want) and victim not in want
    out, _ = run("status")
    assert "deleted" not in out and "2 files not in the workspace" in out  # A's two new images
    assert f"added:     {victim}" in out  # the workspace still has what A deleted: checkout removes it
    run("pull")
    out, _ = run("status")
    assert "up to date" in out
    assert (b / "images/imgA.jpg").read_bytes() == b"from A" and (b / "images/imgB.jpg").read_bytes() == b"from B"
    assert not (b / "images" / victim).exists()
    run("push")  # the merged tree's nodes are in B's cache: they go up with B's next push
    sh(b, "push", "-q", "origin", "main")
    fresh = clone(tmp_path / "origin.git", tmp_path / "fresh")
    monkeypatch.chdir(fresh)
    run("pull")
    assert tracked(fresh, "images") == tracked(b, "images")
    assert (fresh / "images/new/a1.jpg").read_bytes() == b"A1" and (fresh / "images/new/b1.jpg").read_bytes() == b"B1"


def test_conflicts_are_named_and_resolved_by_side_or_by_add(tmp_path: Path, run, make_images, monkeypatch) -> None:
    a, b = two_producers(tmp_path, run, make_images, monkeypatch)
    one, two = (p.relative_to(a / "images").as_posix() for p in sorted((a / "images").rglob("*.jpg"))[:2])
    produce(a, run, monkeypatch, {one: b"A's edit", two: b"A's too", "imgA.jpg": b"A"}, "A edits")
    produce(b, run, monkeypatch, {one: b"B's edit", two: b"", "imgB.jpg": b"B"}, "B edits", push_git=False)
    p = sh(b, "pull", "--no-rebase", "--no-edit", "origin", "main", ok=False)
    assert f"images/{one}: modified in ours, modified in theirs" in p.stderr
    assert f"images/{two}: deleted in ours, modified in theirs" in p.stderr
    out, _ = run("status")
    assert "unmerged: a Git merge left 2 conflicts" in out and "fastreg merge --ours images" in out
    # the hints work: Git wants the metafile, and a plain `fastreg merge` cannot settle these
    assert "`git add images.fastreg`" in out and "`fastreg merge images`" not in out
    _, err = run("push", rc=5)
    assert "unmerged" in err and "fastreg merge --ours images" in err and "`git add images.fastreg`" in err
    # Settle one path with theirs, the other stays: still unmerged (exit 5), one line per path.
    _, err = run("merge", "--theirs", f"images/{one}", rc=5, error=False)
    assert f"CONFLICT images/{two}" in err and one not in err.split("error:")[0]
    out, _ = run("merge", "--ours", "images")
    assert "Merged images.fastreg" in out and "git add images.fastreg" in out
    got = tracked(b, "images")
    assert two not in got and {"imgA.jpg", "imgB.jpg"} <= set(got)
    run("pull")
    assert (b / f"images/{one}").read_bytes() == b"A's edit"
    sh(b, "commit", "-qam", "merged")
    # The same conflict resolved by a fresh add instead: the workspace's version of each path.
    sh(b, "reset", "-q", "--hard", "HEAD~1")
    run("checkout", "--force")
    sh(b, "pull", "--no-rebase", "--no-edit", "origin", "main", ok=False)
    run("add", "images")
    got = tracked(b, "images")
    assert two not in got and {"imgA.jpg", "imgB.jpg"} <= set(got)
    monkeypatch.chdir(b)
    assert tracked(b, "images")[one] == tracked_digest(b"B's edit")


def tracked_digest(body: bytes) -> bytes:
    return file_id(body)


def test_merge_under_rebase_and_cherry_pick(tmp_path: Path, run, make_images, monkeypatch) -> None:
    a, b = two_producers(tmp_path, run, make_images, monkeypatch)
    produce(a, run, monkeypatch, {"imgA.jpg": b"A"}, "A adds")
    produce(b, run, monkeypatch, {"imgB.jpg": b"B"}, "B adds", push_git=False)
    produce(b, run, monkeypatch, {"imgB2.jpg": b"B2"}, "B adds more", push_git=False)
    sh(b, "pull", "-q", "--rebase", "origin", "main")
    assert {"imgA.jpg", "imgB.jpg", "imgB2.jpg"} <= set(tracked(b, "images"))
    assert sh(b, "log", "--format=%s").stdout.split("\n")[:3] == ["B adds more", "B adds", "A adds"]
    # cherry-pick A's next commit onto a branch of B's that lacks it
    produce(a, run, monkeypatch, {"imgA2.jpg": b"A2"}, "A adds more")
    sh(b, "fetch", "-q", "origin")
    sh(b, "checkout", "-q", "-b", "side", "HEAD~1")  # B's first commit on top of A's
    monkeypatch.chdir(b)
    sh(b, "cherry-pick", "origin/main")
    got = set(tracked(b, "images"))
    assert {"imgA.jpg", "imgB.jpg", "imgA2.jpg"} <= got and "imgB2.jpg" not in got


def test_a_clone_without_the_driver_gets_the_exact_commands(tmp_path: Path, run, make_images, monkeypatch) -> None:
    a, b = two_producers(tmp_path, run, make_images, monkeypatch)
    produce(a, run, monkeypatch, {"imgA.jpg": b"A"}, "A adds")
    produce(b, run, monkeypatch, {"imgB.jpg": b"B"}, "B adds", push_git=False)
    sh(b, "config", "--remove-section", "merge.fastreg")  # as a clone made by hand, before any fastreg command
    sh(b, "pull", "--no-rebase", "--no-edit", "origin", "main", ok=False)  # Git's text merge: markers
    assert "<<<<<<<" in (b / "images.fastreg").read_text()
    _, err = run("add", "images", rc=5)  # never records over the other side
    assert "fastreg merge images" in err
    out, _ = run("status")
    assert "unmerged" in out and "fastreg merge images" in out
    out, _ = run("merge", "images")  # keeps both sides (the driver is registered by now too)
    assert {"imgA.jpg", "imgB.jpg"} <= set(tracked(b, "images"))
    assert "merge.fastreg.driver" in sh(b, "config", "--list").stdout


def test_two_updates_of_one_import_are_a_conflict_naming_both(tmp_path: Path, project: Path, run, make_images,
                                                               monkeypatch) -> None:
    from tests.helpers import make_registry

    make_registry(project, run, make_images, str(tmp_path / "regremote"))
    origin = tmp_path / "consumer.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    a = clone(origin, tmp_path / "cA")
    monkeypatch.chdir(a)
    run("init")
    run("import", str(project), "use-cases/cats-dogs", "-o", "cd", "--rev", "cats-dogs-v1")
    sh(a, "add", "-A")
    sh(a, "commit", "-qm", "import v1")
    sh(a, "push", "-q", "origin", "main")
    b = clone(origin, tmp_path / "cB")
    monkeypatch.chdir(a)
    run("update", "cd.fastreg", "--rev", "cats-dogs-v2")
    sh(a, "commit", "-qam", "to v2")
    sh(a, "push", "-q", "origin", "main")
    monkeypatch.chdir(b)
    run("pull")
    run("update", "cd.fastreg", "--rev", "main")
    sh(b, "commit", "-qam", "to main")
    p = sh(b, "pull", "--no-rebase", "--no-edit", "origin", "main", ok=False)
    assert "at main" in p.stderr and "at cats-dogs-v2" in p.stderr
    out, _ = run("status")
    assert "unmerged" in out
    run("merge", "--theirs")
    assert Project(b).read_meta(Project(b).target("cd")).source.rev == "cats-dogs-v2"

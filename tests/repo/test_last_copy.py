"""Never the last copy: `remove --outs`, `gc`, `push` and a bare `git push` never drop or strand
the only copy of a version unless told to by name. Each test drives the real CLI (and real Git)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import files_under, git


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def cache_files(project: Path) -> set[str]:
    return {p.name for p in (project / ".fastreg/cache/files").rglob("*") if p.is_file()}


def test_remove_outs_refuses_to_delete_local_changes(project: Path, run) -> None:
    write(project, {"ds/a.txt": b"a\n", "ds/b.txt": b"b\n"})
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    write(project, {"ds/a.txt": b"edited\n", "ds/notes.txt": b"mine\n"})
    _, err = run("checkout", rc=8)
    _, err = run("remove", "--outs", "ds.fastreg", rc=8)
    assert "ds/a.txt" in err and "ds/notes.txt" in err and "--force" in err
    assert (project / "ds/notes.txt").read_bytes() == b"mine\n" and (project / "ds.fastreg").exists()
    run("remove", "--outs", "--force", "ds.fastreg")
    assert not (project / "ds").exists() and not (project / "ds.fastreg").exists()


def test_remove_outs_of_unchanged_data_goes_ahead(project: Path, run) -> None:
    write(project, {"ds/a.txt": b"a\n"})
    run("add", "ds")
    write(project, {"ds/a.txt": b"b\n"})
    run("add", "ds")
    write(project, {"ds/a.txt": b"a\n"})  # back to a version the cache holds: nothing new to lose
    run("remove", "--outs", "ds.fastreg")
    assert not (project / "ds").exists()


def _two_versions(project: Path, run, remote: Path | None) -> tuple[dict[str, bytes], set[str]]:
    """v1 committed (and pushed when there is a remote), v2 committed and never pushed; returns
    v2's files and the cache objects only v2 has."""
    if remote is not None:
        run("remote", "add", "-d", "store", str(remote))
    write(project, {f"ds/f{i}": os.urandom(20_000) for i in range(3)})
    run("add", "ds")
    if remote is not None:
        run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    git(project, "tag", "v1")
    before = cache_files(project)
    write(project, {"ds/f9": os.urandom(30_000)})
    run("add", "ds")
    git(project, "commit", "-qam", "v2")
    return files_under(project / "ds"), cache_files(project) - before


def test_gc_workspace_keeps_a_committed_version_the_remote_lacks(tmp_path: Path, project: Path, run) -> None:
    v2, only_v2 = _two_versions(project, run, tmp_path / "remote")
    git(project, "checkout", "-q", "v1")
    run("checkout")
    out, _ = run("gc", "-w")
    assert "Kept 1 file and 1 tree" in out and "remote 'store' lacks them" in out and "--drop-unpushed" in out
    assert only_v2 <= cache_files(project)
    git(project, "checkout", "-q", "main")
    run("checkout")
    assert files_under(project / "ds") == v2
    # once pushed, gc -w may drop it: another copy exists
    run("push")
    git(project, "checkout", "-q", "v1")
    run("checkout")
    out, _ = run("gc", "-w")
    assert "Kept" not in out and "Removed 1 file and 1 tree" in out
    assert not only_v2 & cache_files(project)


def test_gc_workspace_without_a_remote_keeps_every_committed_version(project: Path, run) -> None:
    _, only_v2 = _two_versions(project, run, None)
    git(project, "checkout", "-q", "v1")
    run("checkout")
    out, _ = run("gc", "-w")
    assert "no remote is configured" in out and only_v2 <= cache_files(project)
    out, _ = run("gc", "-w", "--drop-unpushed")  # told to, by name
    assert "Removed 1 file and 1 tree" in out and not only_v2 & cache_files(project)


def test_gc_of_a_shared_cache_keeps_what_another_project_has_not_pushed(tmp_path: Path, project: Path, run,
                                                                        monkeypatch) -> None:
    shared = tmp_path / "shared-cache"
    config = f'[cache]\ndir = "{shared}"\n'
    (project / ".fastreg/config").write_text(config)
    write(project, {"mine/a": os.urandom(1000)})
    run("add", "mine")
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=other, check=True)
    monkeypatch.chdir(other)
    run("init")
    (other / ".fastreg/config").write_text(config)
    git(other, "add", "-A")
    git(other, "commit", "-qm", "init")
    write(other, {"theirs/b": os.urandom(1000)})
    run("add", "theirs")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "theirs v1")
    theirs = files_under(other / "theirs")
    git(other, "checkout", "-q", "HEAD~1")  # their workspace no longer refers to it; no remote has it
    shutil.rmtree(other / "theirs")
    monkeypatch.chdir(project)
    out, _ = run("gc", "-w", "--grace", "0")
    assert "Kept 1 file" in out
    monkeypatch.chdir(other)
    git(other, "checkout", "-q", "main")
    run("checkout")
    assert files_under(other / "theirs") == theirs


def test_push_all_tags_publishes_versions_the_workspace_left_behind(tmp_path: Path, project: Path, run,
                                                                     monkeypatch) -> None:
    remote = tmp_path / "remote"
    run("remote", "add", "-d", "store", str(remote))
    write(project, {"ds/a": os.urandom(20_000), "ds/b": os.urandom(20_000)})
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    git(project, "tag", "v1")
    v1 = files_under(project / "ds")
    (project / "ds/a").unlink()
    write(project, {"ds/c": os.urandom(20_000)})
    run("add", "ds")
    git(project, "commit", "-qam", "v2")
    run("push")  # the workspace's version only
    out, _ = run("status", "-r", "--all-tags")
    assert "ds (version " in out and "not in remote store: 1 of 2 files" in out and "push --all-tags" in out
    _, err = run("status", "-r", "--rev", "v1-typo", rc=2)
    assert "v1-typo" in err
    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(project), str(reader)], check=True)
    git(reader, "checkout", "-q", "v1")
    monkeypatch.chdir(reader)
    run("pull", rc=1)  # its data is nowhere
    monkeypatch.chdir(project)
    out, _ = run("push", "--all-tags")
    assert "Pushed" in out
    out, _ = run("status", "-r", "--all-commits")
    assert "Everything is in remote store." in out
    monkeypatch.chdir(reader)
    run("pull")
    assert files_under(reader / "ds") == v1


def test_push_uploads_every_target_it_can_and_names_the_ones_it_cannot(tmp_path: Path, project: Path, run,
                                                                        monkeypatch) -> None:
    remote = tmp_path / "remote"
    run("remote", "add", "-d", "store", str(remote))
    write(project, {"lost/a": os.urandom(5000), "kept/b": os.urandom(5000)})
    run("add", "lost", "kept")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    # the teammate has neither dataset's data; "lost" was never pushed by anyone
    write(mate, {"new/c": os.urandom(5000)})
    run("add", "new")
    monkeypatch.chdir(project)
    run("push", "kept")
    monkeypatch.chdir(mate)
    _, err = run("push", rc=3)
    assert "1 target could not be pushed" in err and "lost: its data is neither" in err
    assert "run `fastreg push` in a clone that has it (last committed by t <t@example.invalid> in " in err
    assert "kept" not in err
    # the teammate's own dataset went up all the same: a fresh clone of its commit pulls it
    git(mate, "add", "-A")
    git(mate, "commit", "-qm", "new")
    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(mate), str(reader)], check=True)
    monkeypatch.chdir(reader)
    run("pull", "new", "kept")
    assert files_under(reader / "new") == files_under(mate / "new")
    # the clone that has it can repair it, and then everything pulls
    monkeypatch.chdir(project)
    run("push")
    monkeypatch.chdir(mate)
    run("push")
    monkeypatch.chdir(reader)
    run("pull")


def _origin_and_clones(tmp_path: Path, run, monkeypatch) -> tuple[Path, Path, Path, Path]:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    a, b = tmp_path / "a", tmp_path / "b"
    remote = tmp_path / "data-remote"
    subprocess.run(["git", "clone", "-q", str(origin), str(a)], check=True, capture_output=True)
    monkeypatch.chdir(a)
    run("init")
    run("remote", "add", "-d", "store", str(remote))
    write(a, {f"images/{i}.jpg": os.urandom(8000) for i in range(4)})
    run("add", "images")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "v1")
    git(a, "push", "-q", "origin", "main")  # the hook uploads v1: no `fastreg push` was run
    subprocess.run(["git", "clone", "-q", str(origin), str(b)], check=True, capture_output=True)
    return origin, a, b, remote


def test_a_bare_git_push_uploads_what_the_pushed_commits_need(tmp_path: Path, run, monkeypatch) -> None:
    origin, a, b, _ = _origin_and_clones(tmp_path, run, monkeypatch)
    assert "fastreg pre-push hook" in (a / ".git/hooks/pre-push").read_text()
    monkeypatch.chdir(b)
    run("pull")
    # two producers change the dataset; B merges and pushes with Git alone
    monkeypatch.chdir(a)
    write(a, {"images/a-new.jpg": os.urandom(8000)})
    run("add", "images")
    git(a, "commit", "-qam", "a adds")
    git(a, "push", "-q")
    monkeypatch.chdir(b)
    write(b, {"images/b-new.jpg": os.urandom(8000)})
    run("add", "images")
    git(b, "commit", "-qam", "b adds")
    git(b, "pull", "-q", "--no-rebase", "--no-edit")
    p = subprocess.run(["git", "push", "-q"], cwd=b, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(origin), str(fresh)], check=True, capture_output=True)
    monkeypatch.chdir(fresh)
    run("pull")
    assert sorted(files_under(fresh / "images")) == sorted(["0.jpg", "1.jpg", "2.jpg", "3.jpg", "a-new.jpg",
                                                            "b-new.jpg"])


def test_pre_push_check_mode_refuses_and_an_own_hook_is_never_overwritten(tmp_path: Path, run,
                                                                           monkeypatch) -> None:
    _, a, _, _ = _origin_and_clones(tmp_path, run, monkeypatch)
    (a / ".fastreg/config.local").write_text('[core]\npre_push = "check"\n')
    write(a, {"images/new.jpg": os.urandom(8000)})
    run("add", "images")
    git(a, "commit", "-qam", "more")
    p = subprocess.run(["git", "push", "-q"], cwd=a, capture_output=True, text=True)
    assert p.returncode != 0 and "lacks" in p.stderr and "fastreg push" in p.stderr
    run("push")
    p = subprocess.run(["git", "push", "-q"], cwd=a, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # a hook of the user's own stays as it is; init says what line to add to it
    own = "#!/bin/sh\necho mine\n"
    (a / ".git/hooks/pre-push").write_text(own)
    _, err = run("init")
    assert "hook of your own" in err and "-m fastreg pre-push" in err
    run("status")
    assert (a / ".git/hooks/pre-push").read_text() == own
    # so does a core.hooksPath someone set
    (a / ".git/hooks/pre-push").unlink()
    git(a, "config", "core.hooksPath", ".husky")
    _, err = run("init")
    assert "core.hooksPath" in err
    assert not (a / ".git/hooks/pre-push").exists() and not (a / ".husky").exists()


def test_a_git_push_of_data_with_no_remote_to_hold_it_is_refused_unless_turned_off(tmp_path: Path, run,
                                                                                    monkeypatch) -> None:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    a = tmp_path / "a"
    subprocess.run(["git", "clone", "-q", str(origin), str(a)], check=True, capture_output=True)
    monkeypatch.chdir(a)
    run("init")
    write(a, {"notes/a.txt": b"a\n"})
    run("add", "notes")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "notes")
    p = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=a, capture_output=True, text=True)
    assert p.returncode != 0 and "no default remote" in p.stderr and 'pre_push = "off"' in p.stderr
    (a / ".fastreg/config.local").write_text('[core]\npre_push = "off"\n')
    p = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=a, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_gc_workspace_with_a_remote_that_does_not_answer_keeps_every_committed_version(project: Path,
                                                                                        run) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    run("remote", "add", "-d", "store", "s3://somebucket/x")
    run("remote", "modify", "store", "endpoint_url", f"http://127.0.0.1:{port}")
    write(project, {"ds/a": b"a"})
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    write(project, {"ds/b": b"b"})
    run("add", "ds")
    git(project, "commit", "-qam", "v2")
    only_v2 = cache_files(project)
    git(project, "checkout", "-q", "HEAD~1")
    run("checkout")
    out, _ = run("gc", "-w")
    assert "remote 'store' could not be asked" in out and only_v2 <= cache_files(project)

"""A team's life with imports: imports that travel with the consumer's Git repository, failed
updates that change nothing, a registry whose default branch moves."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import files_under, git, make_registry


def clone(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, capture_output=True)
    return dest


def commit_consumer(consumer: Path, message: str) -> None:
    git(consumer, "add", "-A")
    git(consumer, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", message)


def teammate_pulls_imports(tmp_path: Path, project: Path, run, make_images, consumer: Path, monkeypatch,
                           remote_url: str, *options: tuple[str, str]) -> None:
    versions = make_registry(project, run, make_images, remote_url, *options)
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v1")
    run("import", str(project), "use-cases/cats-dogs/data/validation", "-o", "val")  # default branch
    commit_consumer(consumer, "import cats-dogs")
    # The registry moves on after the import: the teammate still gets what rev_lock says.
    monkeypatch.chdir(project)
    make_images(project / "use-cases/cats-dogs", train=0, validation=4, start=900)
    run("add", "use-cases/cats-dogs")
    run("push")
    git(project, "commit", "-qam", "v3: more validation images")

    mate = clone(consumer, tmp_path / "teammate")
    monkeypatch.chdir(mate)
    out, _ = run("status")
    assert "not in the workspace (never pulled here" in out and "fastreg pull cats-dogs" in out
    out, _ = run("pull")  # the consumer has no remote of its own
    assert f"registry {project}" in out
    assert files_under(mate / "cats-dogs") == versions["v1"]
    assert files_under(mate / "val") == {k[len("data/validation/"):]: v for k, v in versions["v2"].items()
                                         if k.startswith("data/validation/")}
    out, _ = run("status")
    assert "val:\n    import source default branch moved to" in out  # the registry moved on, rev_lock stayed
    assert "cats-dogs:" not in out
    out, _ = run("push")
    assert "Skipped 2 imports" in out
    # A fetch, then a checkout, into a second fresh clone.
    other = clone(consumer, tmp_path / "other")
    monkeypatch.chdir(other)
    run("fetch", "cats-dogs")
    out, _ = run("checkout", "cats-dogs")
    assert files_under(other / "cats-dogs") == versions["v1"]


def test_teammate_pulls_imports_local_remote(tmp_path: Path, project: Path, run, make_images, consumer: Path,
                                             monkeypatch) -> None:
    teammate_pulls_imports(tmp_path, project, run, make_images, consumer, monkeypatch, str(tmp_path / "remote"))


def test_teammate_pulls_imports_s3(tmp_path: Path, project: Path, run, make_images, consumer: Path, monkeypatch,
                                   seaweed, bucket) -> None:
    teammate_pulls_imports(tmp_path, project, run, make_images, consumer, monkeypatch, f"s3://{bucket}/registry",
                           ("endpoint_url", seaweed.endpoint))


def test_imports_beside_own_data_and_a_gone_source(tmp_path: Path, project: Path, run, make_images,
                                                   consumer: Path, monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v2")
    make_images(consumer / "mine", train=4, validation=2, start=700)
    mine = files_under(consumer / "mine")
    run("add", "mine")
    run("remote", "add", "-d", "own", str(tmp_path / "own-remote"))
    out, _ = run("push")
    assert "Skipped 1 import:" in out and "own" in out
    commit_consumer(consumer, "import + own data")
    mate = clone(consumer, tmp_path / "teammate")
    monkeypatch.chdir(mate)
    run("pull")
    assert files_under(mate / "cats-dogs") == versions["v2"]
    assert files_under(mate / "mine") == mine
    # The registry disappears: on a machine that has no mirror of it yet, one error naming the import.
    third = clone(consumer, tmp_path / "third")
    project.rename(tmp_path / "moved-away")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-machine"))
    monkeypatch.chdir(third)
    _, err = run("pull", "cats-dogs", rc=1)
    assert "cats-dogs.fastreg: its import source" in err and str(project) in err


def test_failed_update_changes_nothing_and_add_keeps_imports(tmp_path: Path, project: Path, run, make_images,
                                                              consumer: Path, monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v1")
    before = (consumer / "cats-dogs.fastreg").read_text()
    (consumer / "cats-dogs/data/train/cats/cat.0001.jpg").write_bytes(b"my local edit")
    _, err = run("update", "cats-dogs.fastreg", "--rev", "cats-dogs-v2", rc=8)  # a conflict in the workspace
    assert "local changes" in err
    assert (consumer / "cats-dogs.fastreg").read_text() == before  # still v1, like the workspace
    _, err = run("add", "cats-dogs", rc=1)
    assert "imported from" in err and "--force" in err
    assert (consumer / "cats-dogs.fastreg").read_text() == before
    run("checkout", "--force", "cats-dogs")
    run("update", "cats-dogs.fastreg", "--rev", "cats-dogs-v2")
    assert files_under(consumer / "cats-dogs") == versions["v2"]
    (consumer / "cats-dogs/extra.txt").write_text("mine now")
    run("add", "--force", "cats-dogs")
    assert "[import]" not in (consumer / "cats-dogs.fastreg").read_text()


def test_default_branch_follows_the_registry_head(tmp_path: Path, project: Path, run, make_images,
                                                  consumer: Path, monkeypatch) -> None:
    make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs", "-o", "latest")
    monkeypatch.chdir(project)
    git(project, "checkout", "-qb", "next")
    (project / "use-cases/cats-dogs/data/train/cats/cat.0001.jpg").unlink()
    run("add", "use-cases/cats-dogs")
    run("push")
    (project / "NEXT.md").write_text("the next branch\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "next: one cat less")  # HEAD of the registry is now branch `next`
    monkeypatch.chdir(consumer)
    out, _ = run("status")
    assert "import source default branch moved to" in out
    out, _ = run("update", "latest.fastreg")
    assert "Updated latest" in out
    assert not (consumer / "latest/data/train/cats/cat.0001.jpg").exists()
    out, _ = run("status")
    assert "up to date" in out
    out, _ = run("list", str(project))
    assert "NEXT.md" in out.split()

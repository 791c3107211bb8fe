"""Imports that go wrong: killed at any point, a Git file of the registry, data the registry moved."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import files_under


def test_an_import_killed_at_any_point_can_be_run_again(tmp_path: Path, project: Path, run, make_images,
                                                         consumer: Path, monkeypatch) -> None:
    """SIGKILL at a spread of moments (Git mirror, trees, download, check-out, metafile,
    .gitignore); the same import run again finishes and equals a clean import."""
    import signal
    import sys
    import time

    from tests.helpers import make_registry

    make_registry(project, run, make_images, str(tmp_path / "remote"))
    fastreg = str(Path(sys.executable).parent / "fastreg")
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v2", "-o", "clean")
    from dataclasses import replace

    from fastreg.objects import metafile

    want_meta = metafile.loads((consumer / "clean.fastreg").read_text(), "clean.fastreg")
    want = files_under(consumer / "clean")
    for i, delay in enumerate([0.05, 0.15, 0.25, 0.35, 0.45, 0.6, 0.8, 1.2]):
        out = f"cd{i}"
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / f"xdg{i}")}  # a cold user cache each time
        p = subprocess.Popen([fastreg, "import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v2",
                              "-o", out], cwd=consumer, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        again = subprocess.run([fastreg, "import", str(project), "use-cases/cats-dogs", "--rev", "cats-dogs-v2",
                                "-o", out], cwd=consumer, env=env, capture_output=True, text=True)
        assert again.returncode == 0, f"after a kill at {delay} s: {again.stderr}"
        assert files_under(consumer / out) == want
        assert replace(metafile.loads((consumer / f"{out}.fastreg").read_text(), out), path="clean") == want_meta
        assert f"/{out}" in (consumer / ".gitignore").read_text().split()
        assert not [p.name for p in consumer.iterdir() if "fastreg-import" in p.name]
    out, _ = run("status")
    assert "up to date" in out


def test_an_imported_git_file_is_pulled_in_a_teammates_clone(tmp_path: Path, project: Path, run, make_images,
                                                              consumer: Path, monkeypatch) -> None:
    from tests.helpers import git, make_registry
    from tests.registry.test_lifecycle import clone, commit_consumer

    make_registry(project, run, make_images, str(tmp_path / "remote"))
    (project / "use-cases/classes.txt").write_text("cat\ndog\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "classes")
    monkeypatch.chdir(consumer)
    run("import", str(project), "use-cases/classes.txt")
    run("import", str(project), "use-cases/cats-dogs/data/validation", "-o", "val")
    commit_consumer(consumer, "imports")
    mate = clone(consumer, tmp_path / "mate")
    monkeypatch.chdir(mate)
    run("pull")
    assert (mate / "classes.txt").read_text() == "cat\ndog\n"
    assert files_under(mate / "val") == files_under(project / "use-cases/cats-dogs/data/validation")
    out, _ = run("status")
    assert "up to date" in out


def test_update_after_the_registry_moved_the_data_says_where(tmp_path: Path, project: Path, run, make_images,
                                                              consumer: Path, monkeypatch) -> None:
    from tests.helpers import git

    monkeypatch.chdir(project)
    for i in range(3):
        make_images(project / f"ds/{i:02}", train=2, validation=2, start=1 + 10 * i, mean_kb=2)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    monkeypatch.chdir(consumer)
    run("import", str(project), "ds/01", "-o", "one")
    before = files_under(consumer / "one")
    monkeypatch.chdir(project)
    run("move", "ds", "data/ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "moved")
    monkeypatch.chdir(consumer)
    _, err = run("update", "one.fastreg", rc=1)
    assert "not found" in err and "data/ds/01" in err and "fastreg update one.fastreg --path data/ds/01" in err
    run("update", "one.fastreg", "--path", "data/ds/01")
    assert files_under(consumer / "one") == before
    assert 'path = "data/ds/01"' in (consumer / "one.fastreg").read_text()
    out, _ = run("update", "one.fastreg")
    assert "up to date" in out

"""A monorepo of DVC projects made with `dvc init --subdir` (by real DVC 3): each subproject is
read by path, with its own remote, as DVC's get and `list --subrepos` do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.dvctools import Dvc
from tests.helpers import files_under, git


def _monorepo(tmp_path: Path, dvc3: Dvc) -> Path:
    root = tmp_path / "mono"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "README.md").write_text("two teams, two DVC projects\n")
    for team, body in (("vision", b"cat pixels\n"), ("nlp", b"some tokens\n")):
        proj = root / "teams" / team
        (proj / "data").mkdir(parents=True)
        (proj / "data" / "a.txt").write_bytes(body)
        (proj / "data" / "b.txt").write_bytes(body * 2)
        dvc3("init", "--subdir", "-q", cwd=proj)
        dvc3("remote", "add", "-d", "store", str(tmp_path / f"remote-{team}"), cwd=proj)
        dvc3("add", "-q", "data", cwd=proj)
        dvc3("push", "-q", cwd=proj)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "monorepo")
    return root


def test_each_subproject_of_a_monorepo_is_read_by_path(tmp_path: Path, dvc3: Dvc, run, monkeypatch) -> None:
    root = _monorepo(tmp_path, dvc3)
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(root), "-R", "--tracked-only")
    assert [line.split()[0] + " " + line.split()[-1] for line in out.splitlines()] == [
        "* teams/nlp/data/", "* teams/nlp/data/a.txt", "* teams/nlp/data/b.txt",
        "* teams/vision/data/", "* teams/vision/data/a.txt", "* teams/vision/data/b.txt"]
    out, _ = run("list", str(root))
    assert [line.split()[-1] for line in out.splitlines()] == ["README.md", "teams/"]
    for team, body in (("vision", b"cat pixels\n"), ("nlp", b"some tokens\n")):  # each from its own remote
        run("get", str(root), f"teams/{team}/data", "-o", f"got-{team}")
        assert files_under(tmp_path / f"got-{team}") == {"a.txt": body, "b.txt": body * 2}
    doc = json.loads(run("list", str(root), "teams/vision/data", "--json")[0])
    assert [e["path"] for e in doc] == ["teams/vision/data/a.txt", "teams/vision/data/b.txt"]

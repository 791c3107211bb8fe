"""`fastreg migrate` of real DVC projects: in place, verified, resumable; a fresh clone's
`fastreg pull` gives what `dvc get` of the original gives."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.dvctools import DvcProject, git, same_tree


def _commit(root: Path, message: str) -> None:
    git("add", "-A", cwd=root)
    git("commit", "-qm", message, cwd=root)


def _tracked(root: Path) -> list[str]:
    return git("ls-files", cwd=root).split()


def test_migrate_push_commit_and_a_fresh_clone_pulls_what_dvc_has(own3: DvcProject, tmp_path: Path, run,
                                                                   monkeypatch) -> None:
    root = own3.root
    reference = {p: own3.get(p, tmp_path / f"ref-{i}", "v2")
                 for i, p in enumerate(["data", "models/model.bin", "sub/nested/table.csv"])}
    monkeypatch.chdir(root)
    out, _ = run("migrate", "--dry-run")
    assert "would migrate data (dir, 43 files" in out and "would keep pipe/out/summary.txt with DVC" in out
    assert not (root / ".fastreg").exists() and (root / "data.dvc").exists()  # a dry run changes nothing
    out, _ = run("migrate", "--push")
    assert "3 outs migrated: 45 files" in out and "45 md5s verified" in out and "Pushed" in out
    assert "Kept pipe/out/summary.txt with DVC" in out
    tracked = _tracked(root)
    assert "data.dvc" not in tracked and "models/model.bin.dvc" not in tracked and "pipe/dvc.lock" in tracked
    assert not (root / "data.dvc").exists()
    assert "/data" in (root / ".gitignore").read_text().split()
    config = (root / ".fastreg" / "config").read_text()
    assert "remote-fastreg" in config and 'remote = "store"' in config
    run("status", "-q")
    _commit(root, "fastreg")
    out, _ = run("migrate")  # a second run has nothing to do
    assert "migrated" not in out
    assert not git("status", "--porcelain", cwd=root).strip()

    mate = root.parent / "mate"  # beside the registry: its remote is a relative path (../remote-fastreg)
    git("clone", "-q", str(root), str(mate), cwd=tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "mate-xdg"))
    monkeypatch.chdir(mate)
    shutil.rmtree(root / ".fastreg" / "cache")  # the clone must read the fastreg remote, not a cache nearby
    run("pull")
    same_tree(mate / "data", reference["data"])
    for p in ("models/model.bin", "sub/nested/table.csv"):
        assert (mate / p).read_bytes() == reference[p].read_bytes()


def test_bytes_come_from_the_dvc_cache_when_the_workspace_changed_and_nowhere_is_an_error(
        own3: DvcProject, tmp_path: Path, run, monkeypatch) -> None:
    """A workspace file edited since `dvc add` is not what the .dvc records: its bytes come from
    the DVC cache. A file in neither place is not recorded wrong: the out is skipped (its .dvc
    stays), the others migrate, and --from-remote completes it from the DVC remote."""
    import yaml

    root = own3.root
    reference = own3.get("data", tmp_path / "ref", "v2")
    cat = root / "data" / "train" / "cats" / "cat.0003.jpg"
    os.chmod(cat, 0o644)
    cat.write_bytes(b"edited in the workspace")
    table = root / "sub" / "nested" / "table.csv"
    md5 = yaml.safe_load((root / "sub/nested/table.csv.dvc").read_text())["outs"][0]["md5"]
    os.chmod(table, 0o644)
    table.write_text("edited too\n")
    shutil.rmtree(root / ".dvc" / "cache" / "files" / "md5" / md5[:2])
    monkeypatch.chdir(root)
    _, err = run("migrate", rc=1)
    assert "sub/nested/table.csv" in err and md5 in err and "--from-remote" in err
    assert (root / "sub/nested/table.csv.dvc").exists() and not (root / "sub/nested/table.csv.fastreg").exists()
    assert (root / "data.fastreg").exists() and not (root / "data.dvc").exists()
    assert cat.read_bytes() == b"edited in the workspace"  # migrate records, it never rewrites the workspace
    out, _ = run("status")
    assert "cat.0003.jpg" in out
    run("checkout", "--force", "data")
    same_tree(root / "data", reference)
    out, _ = run("migrate", "--from-remote")
    assert "1 out migrated" in out
    (root / "sub/nested/table.csv").unlink()
    run("checkout", "sub/nested/table.csv")
    assert (root / "sub/nested/table.csv").read_bytes() == own3.get("sub/nested/table.csv", tmp_path / "t",
                                                                     "v2").read_bytes()


def test_a_migration_killed_at_any_point_finishes_when_run_again(built3: Path, tmp_path: Path, run,
                                                                 monkeypatch) -> None:
    fastreg = str(Path(sys.executable).parent / "fastreg")

    def fresh(name: str) -> Path:
        shutil.copytree(built3, tmp_path / name, symlinks=True)
        return tmp_path / name / "reg"

    clean = fresh("clean")
    monkeypatch.chdir(clean)
    run("migrate")
    want = {p: (clean / p).read_text() for p in ("data.fastreg", "models/model.bin.fastreg",
                                                  "sub/nested/table.csv.fastreg", ".gitignore")}
    for i, delay in enumerate([0.1, 0.25, 0.4, 0.55, 0.7, 0.9]):
        root = fresh(f"k{i}")
        p = subprocess.Popen([fastreg, "migrate"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        again = subprocess.run([fastreg, "migrate"], cwd=root, capture_output=True, text=True)
        assert again.returncode == 0, f"after a kill at {delay} s: {again.stderr}"
        assert {n: (root / n).read_text() for n in want} == want
        assert not [n for n in _tracked(root) if n.endswith(".dvc")]
        monkeypatch.chdir(root)
        run("status", "-q")


def test_migrate_a_dvc2_project_with_crlf_text(reg2: DvcProject, tmp_path: Path, run, monkeypatch) -> None:
    shutil.copytree(reg2.root.parent, tmp_path / "copy", symlinks=True)
    root = tmp_path / "copy" / "reg"
    reference = reg2.get("texts", tmp_path / "ref", "v1")
    monkeypatch.chdir(root)
    out, _ = run("migrate")
    assert "2 outs migrated" in out
    shutil.rmtree(root / "texts")
    (root / "notes.txt").unlink()
    run("checkout")
    same_tree(root / "texts", reference)
    assert (root / "notes.txt").read_bytes() == b"note\r\n" * 30


def test_migrate_outside_a_dvc_project_is_one_error(tmp_path: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, err = run("migrate", rc=2)
    assert "not inside a DVC project" in err


def test_remove_dvc_refuses_while_dvc_owns_pipeline_outs(own3: DvcProject, run, monkeypatch) -> None:
    monkeypatch.chdir(own3.root)
    _, err = run("migrate", "--remove-dvc", rc=2)
    assert "DVC still owns" in err and "pipe/" in err
    assert (own3.root / ".dvc").is_dir() and (own3.root / "data.fastreg").exists()


def test_the_dry_run_is_the_plan_the_real_run_does(own3: DvcProject, tmp_path: Path, run, monkeypatch) -> None:
    """A DVC remote named docs/dvc and a single-file out whose bytes are nowhere (edited in the
    workspace, not in the DVC cache): the dry run says what the real run then does."""
    import yaml

    root = own3.root
    own3.dvc("remote", "add", "docs/dvc", str(tmp_path / "other-dvc-remote"), cwd=root)
    table = root / "sub" / "nested" / "table.csv"
    md5 = yaml.safe_load((root / "sub/nested/table.csv.dvc").read_text())["outs"][0]["md5"]
    os.chmod(table, 0o644)
    table.write_text("edited\n")
    shutil.rmtree(root / ".dvc" / "cache" / "files" / "md5" / md5[:2])
    monkeypatch.chdir(root)
    out, _ = run("migrate", "--dry-run")
    assert "would keep sub/nested/table.csv with DVC: 1 of its files are nowhere" in out  # was "would migrate"
    assert "would add the fastreg remote docs-dvc:" in out
    assert not (root / ".fastreg").exists()
    out, err = run("migrate", rc=1)
    assert "sub/nested/table.csv" in err and "Remote docs-dvc:" in out  # was exit 2, .fastreg/ left behind
    assert not (root / "sub/nested/table.csv.fastreg").exists() and (root / "data.fastreg").exists()

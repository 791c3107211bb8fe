"""Small things a new user meets on the first day: options checked when they are set, hints that
name the command that helps, a mistyped revision."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import git


def test_remote_options_and_urls_are_usage_errors_when_set(project: Path, run) -> None:
    run("remote", "add", "store", "s3://bucket/reg")
    _, err = run("remote", "modify", "store", "pack_size", "5G", rc=2)
    assert "pack_size must be between 1M and 1G" in err
    _, err = run("remote", "add", "x", "s3://UPPER_bucket/x", rc=2)
    assert "'UPPER_bucket' is not an S3 bucket name" in err
    _, err = run("remote", "modify", "store", "retry_budget", "soon", rc=2)
    assert "retry_budget takes seconds" in err
    run("remote", "modify", "store", "retry_budget", "120")
    out, _ = run("remote", "list")
    assert "retry_budget=120" in out


def test_status_offers_pull_when_only_a_pull_can_restore(project: Path, run) -> None:
    (project / "ds").mkdir()
    (project / "ds/a.txt").write_text("a\n")
    run("add", "ds")
    shutil.rmtree(project / "ds")
    out, _ = run("status")
    assert "`fastreg checkout ds` restores it" in out  # the cache has it
    shutil.rmtree(project / ".fastreg/cache")
    out, _ = run("status")
    assert "not in the cache either; `fastreg pull ds` restores it" in out and "checkout" not in out


def test_diff_of_a_mistyped_revision_is_a_usage_error(project: Path, run) -> None:
    (project / "ds").mkdir()
    (project / "ds/a.txt").write_text("a\n")
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    git(project, "tag", "v1")
    (project / "ds/b.txt").write_text("b\n")
    run("add", "ds")
    git(project, "commit", "-qam", "v2")
    git(project, "tag", "v2")
    _, err = run("diff", "v1", "v2-typo", rc=2)
    assert "v2-typo: neither a revision" in err
    out, _ = run("diff", "v1", "v2")
    assert "1 file added" in out
    out, _ = run("diff", "v1", "ds/b.txt")  # a path inside a tracked folder is a target
    assert "ds/b.txt" in out

"""The end-to-end checks every writable remote kind goes through (GCS, Azure, SSH; S3 and a
local directory have theirs in test_push_pull.py): a pushed registry pulled in a fresh clone,
remote gc, and a server that goes away mid-push."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.transfer.test_push_pull import clone, workspace


def pull_in_fresh_clone(project: Path, dest: Path, run, monkeypatch, original: dict[str, bytes],
                        setup: Callable[[], None] | None = None) -> None:
    """A clone of project at dest pulls everything, byte for byte (setup: what a teammate does
    first, such as giving the remote's secret)."""
    clone(project, dest, monkeypatch)
    if setup is not None:
        setup()
    run("pull")
    assert workspace(dest) == original


def remote_gc_drops_what_no_commit_refers_to(project: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(project)
    (project / "scratch.bin").write_bytes(os.urandom(300_000))
    run("add", "scratch.bin")
    run("push")
    run("remote", "modify", "store", "gc_grace", "0")
    (project / "scratch.bin.fastreg").unlink()
    out, _ = run("gc", "--all-commits", "-r")
    assert "Remote store: deleted 1 packs" in out or "rewrote" in out


def push_stopped_mid_way_then_again(project: Path, committed: Callable[[], bool], stop: Callable[[], None],
                                    restart: Callable[[], None], run) -> None:
    """A push (one request at a time) whose server is stopped once the first pack is committed
    (`committed()` says so): one error line, exit 7; with the server back, the rerun completes."""
    proc = subprocess.Popen([sys.executable, "-m", "fastreg", "push", "-j", "1"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 60
    while not committed() and time.monotonic() < deadline:
        time.sleep(0.005)
    stop()  # one pack committed, more to go
    _, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 7 and len(lines) == 1 and lines[0].startswith("error: "), err
    restart()
    run("push")

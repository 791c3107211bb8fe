"""Crash safety and the no-traceback promise, through the installed `fastreg` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.gen import large
from tests.helpers import file_id

FASTREG = [sys.executable, "-m", "fastreg"]


def test_kill_9_during_add_leaves_no_corrupt_object_or_metafile(project: Path, run) -> None:
    data = project / "big"
    data.mkdir()
    for i in range(6):
        large(data / f"part{i}.bin", 48 << 20, seed=i)
    run("add", "big")
    before = (project / "big.fastreg").read_text()
    for i in range(6):
        large(data / f"part{i}.bin", 48 << 20, seed=100 + i)  # v2: all new content
    objects = project / ".fastreg/cache/files"
    proc = subprocess.Popen([*FASTREG, "add", "big"], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # Kill it while it writes a cache object (a temp file exists), with more files to go.
    tmp = project / ".fastreg/cache/tmp"
    deadline = time.monotonic() + 60
    while not os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.0005)
    killed_during_add = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The metafile is still the old one (it is written last), never half-written.
    assert (project / "big.fastreg").read_text() == before
    # Every object under its final name matches its digest.
    for obj in objects.rglob("*"):
        if obj.is_file():
            assert file_id(obj.read_bytes()).hex() == obj.parent.name + obj.name
    assert killed_during_add
    run("add", "big")  # simply run again
    run("checkout")
    out, _ = run("status")
    assert "up to date" in out


def test_python_m_fastreg_and_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([*FASTREG, "--version"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0 and p.stdout.startswith("fastreg ")
    p = subprocess.run([*FASTREG, "status"], cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: not inside a fastreg project")
    assert "Traceback" not in p.stderr
    p = subprocess.run([*FASTREG, "add", "--help"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0 and "PATH.fastreg" in p.stdout


def test_leftover_checkout_temp_files_are_ignored_and_cleaned(project: Path, run) -> None:
    ds = project / "ds"
    ds.mkdir()
    (ds / "a.txt").write_text("a")
    run("add", "ds")
    leftover = ds / ".a.txt.fastreg-tmp-deadbeef-1"  # what a checkout killed mid-write leaves
    leftover.write_text("partial")
    out, _ = run("status")
    assert "up to date" in out
    out, _ = run("add", "ds")
    assert "Unchanged" in out
    run("checkout")
    assert not leftover.exists()

"""A Google Cloud Storage remote (gs://) end to end through the CLI, on a real fake-gcs-server:
push, a fresh clone's pull byte for byte, check, remote gc; a server killed mid-push (the rerun
completes); a missing bucket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import files_under, setup_registry
from tests.servers import start_gcs
from tests.transfer.test_push_pull import clone, workspace


def test_gcs_push_pull_check_and_gc(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                    gcs, gcs_bucket) -> None:
    original = setup_registry(project, run, make_images, f"gs://{gcs_bucket}/registry",
                              ("endpoint_url", gcs.endpoint))
    run("push")
    out, _ = run("status", "--remote")
    assert "Everything is in remote" in out
    run("check", "-r", "store")
    # a consumer of the registry reads it from GCS too: get, list, fastreg://
    monkeypatch.chdir(tmp_path)
    run("get", str(project), "ds", "-o", "got")
    assert {f"ds/{k}": v for k, v in files_under(tmp_path / "got").items()} == \
        {k: v for k, v in original.items() if k.startswith("ds/")}
    import fsspec

    fs = fsspec.filesystem("fastreg", repo=str(project), skip_instance_cache=True)
    assert fs.cat("model.bin") == original["model.bin"]
    other = clone(project, tmp_path / "consumer", monkeypatch)
    run("pull")
    assert workspace(other) == original
    # remote gc: keeps everything committed, drops what no commit refers to
    monkeypatch.chdir(project)
    (project / "scratch.bin").write_bytes(os.urandom(300_000))
    run("add", "scratch.bin")
    run("push")
    run("remote", "modify", "store", "gc_grace", "0")
    (project / "scratch.bin.fastreg").unlink()
    out, _ = run("gc", "--all-commits", "-r")
    assert "Remote store: deleted 1 packs" in out or "rewrote" in out
    clone(project, tmp_path / "consumer2", monkeypatch)
    run("pull")
    assert workspace(tmp_path / "consumer2") == original


def test_gcs_server_killed_mid_push_then_push_again(tmp_path: Path, project: Path, run, make_images,
                                                    monkeypatch) -> None:
    from tests.servers import make_gcs_bucket

    server = start_gcs()
    try:
        make_gcs_bucket(server.endpoint, "killed")
        original = setup_registry(project, run, make_images, "gs://killed/reg", ("endpoint_url", server.endpoint),
                                  ("pack_size", "1M"), ("retry_budget", "2"))
        proc = subprocess.Popen([sys.executable, "-m", "fastreg", "push", "-j", "1"], cwd=project,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        index = Path(server.workdir, "data", "killed", "reg", "index")
        deadline = time.monotonic() + 60
        while not (index.is_dir() and any(index.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.002)
        server.kill()  # one pack committed, more to go
        _, err = proc.communicate(timeout=120)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 7 and len(lines) == 1 and lines[0].startswith("error: "), err
        server = start_gcs(server.port, server.workdir)
        run("push")
        other = clone(project, tmp_path / "consumer", monkeypatch)
        run("pull")
        assert workspace(other) == original
    finally:
        server.stop()


def test_gcs_missing_bucket_is_one_error_line(project: Path, run, make_images, gcs) -> None:
    setup_registry(project, run, make_images, "gs://no-such-bucket/reg", ("endpoint_url", gcs.endpoint))
    _, err = run("push", rc=7)
    assert "no-such-bucket" in err


def test_a_gs_remote_without_its_extra_names_the_pip_install(project: Path, run, make_images) -> None:
    """Google's endpoint needs credentials, and those need google-auth (the fastreg[gcs] extra):
    without it, one error line before any request is made. (The tests' virtualenv has no
    google-auth; an emulator endpoint needs none.)"""
    import importlib.util

    assert importlib.util.find_spec("google") is None
    setup_registry(project, run, make_images, "gs://some-bucket/reg")
    _, err = run("push", rc=1)
    assert "pip install 'fastreg[gcs]'" in err

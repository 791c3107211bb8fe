"""A Google Cloud Storage remote (gs://) end to end through the CLI, on a real fake-gcs-server:
push, a fresh clone's pull byte for byte, check, remote gc; a server killed mid-push (the rerun
completes); a missing bucket."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import files_under, setup_registry
from tests.servers import start_gcs
from tests.transfer.remote_e2e import (
    pull_in_fresh_clone,
    push_stopped_mid_way_then_again,
    remote_gc_drops_what_no_commit_refers_to,
)


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
    pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original)
    remote_gc_drops_what_no_commit_refers_to(project, run, monkeypatch)
    pull_in_fresh_clone(project, tmp_path / "consumer2", run, monkeypatch, original)


def test_gcs_server_killed_mid_push_then_push_again(tmp_path: Path, project: Path, run, make_images,
                                                    monkeypatch) -> None:
    from tests.servers import make_gcs_bucket

    servers = [start_gcs()]
    try:
        first = servers[0]
        make_gcs_bucket(first.endpoint, "killed")
        original = setup_registry(project, run, make_images, "gs://killed/reg", ("endpoint_url", first.endpoint),
                                  ("pack_size", "1M"), ("retry_budget", "2"))
        index = Path(first.workdir, "data", "killed", "reg", "index")
        push_stopped_mid_way_then_again(project, lambda: index.is_dir() and any(index.iterdir()), first.kill,
                                        lambda: servers.append(start_gcs(first.port, first.workdir)), run)
        pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original)
    finally:
        servers[-1].stop()


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

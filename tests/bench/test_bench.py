"""`fastreg bench` against a local-directory remote, a real SeaweedFS and a real HTTP server, through
the CLI: the figures it reports, the clean-up, the time budget, read-only remotes, bad input."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from fastreg.bench import parse_duration, parse_jobs, parse_sizes
from fastreg.bench.runner import percentile
from fastreg.errors import UsageError
from tests.helpers import files_under, setup_registry
from tests.servers import bucket_keys, start_http


def cells(doc: dict, op: str) -> list[dict]:
    return [c for c in doc["cells"] if c["op"] == op]


def tree_snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def check_cell(c: dict) -> None:
    """Figures that agree with each other: what a reader of the table relies on."""
    assert c["requests"] > 0, json.dumps(c)  # the whole cell, its note included, if this fails
    assert c["seconds"] > 0
    assert c["requests_per_s"] == pytest.approx(c["requests"] / c["seconds"], rel=0.02)
    if c["op"] != "list":
        assert c["bytes"] == c["requests"] * c["size"]
        assert c["mib_per_s"] == pytest.approx(c["bytes"] / c["seconds"] / 2**20, rel=0.02)
    lat = c["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    if c["op"] in ("get", "range"):
        assert c["ttfb_ms"]["p50"] <= lat["p99"]
    assert c["errors"] == 0


def test_local_remote_table_json_cleanup_and_budget(tmp_path: Path, run, monkeypatch) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "unrelated.txt").write_text("the user's own file\n")
    before = tree_snapshot(remote)
    monkeypatch.chdir(tmp_path)
    out, _ = run("bench", str(remote), "--sizes", "4K,256K", "--jobs", "1,4", "--duration", "3s", "--json")
    doc = json.loads(out)
    assert doc["schema"] == 1 and doc["remote"]["kind"] == "local"
    assert doc["sizes"] == [4096, 262144] and doc["jobs"] == [1, 4]
    # The budget holds: no request starts after the deadline, so the measurements end within the
    # slowest request of it (however loaded the machine is).
    slowest = max(c["latency_ms"]["max"] for c in doc["cells"] if c["latency_ms"]) / 1000
    assert doc["elapsed"] <= 3.0 + slowest + 0.05
    assert {(c["op"], c["size"], c["jobs"]) for c in doc["cells"]} == {
        *((op, s, j) for op in ("put", "get") for s in (4096, 262144) for j in (1, 4)),
        ("range", 65536, 1), ("range", 65536, 4), ("list", 0, 1)}
    for c in doc["cells"]:
        check_cell(c)
    [lst] = cells(doc, "list")
    assert lst["keys"] >= lst["requests"] * 3  # it lists what the run wrote
    # every object written is deleted: those of the measured requests, the warm-up's and the probe
    assert doc["cleanup"]["objects"] == doc["objects_written"] >= sum(c["requests"] for c in cells(doc, "put")) + 3
    assert tree_snapshot(remote) == before  # the remote is as it was
    # The table shows the same cells.
    out, _ = run("bench", str(remote), "--sizes", "4K", "--jobs", "2", "--duration", "1s")
    assert "put" in out and "get" in out and "range" in out and "keys/s" in out and "Cleaned up" in out
    assert tree_snapshot(remote) == before


def test_keep_leaves_the_objects_and_says_where(tmp_path: Path, run, monkeypatch) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    out, _ = run("bench", str(remote), "--sizes", "4K", "--jobs", "1", "--duration", "1s", "--keep", "--json")
    doc = json.loads(out)
    kept = Path(doc["cleanup"]["kept_at"])
    assert kept.parent == remote and kept.name == doc["prefix"]
    assert doc["objects_written"] > cells(doc, "put")[0]["requests"]
    assert len([p for p in kept.rglob("*") if p.is_file()]) == doc["objects_written"]


def test_s3_with_dataset_and_plot(tmp_path: Path, run, seaweed, bucket, monkeypatch, make_images) -> None:
    pytest.importorskip("matplotlib")
    make_images(tmp_path / "ds", train=60, validation=20)
    (tmp_path / "ds" / "big.bin").write_bytes(os.urandom(3 << 20))  # chunked, spans packs' ranges
    (tmp_path / "ds" / "copy.bin").write_bytes((tmp_path / "ds" / "big.bin").read_bytes())  # dedup
    source = files_under(tmp_path / "ds")
    (tmp_path / "keep.txt").write_text("x")
    before = bucket_keys(seaweed.endpoint, bucket)
    monkeypatch.chdir(tmp_path)
    plot = tmp_path / "bench.png"
    # 11 cells share the budget: 8 s gives each about 0.7 s, so one stall of a server on a busy
    # machine does not leave a cell without a finished request.
    out, _ = run("bench", f"s3://{bucket}/team", "--endpoint-url", seaweed.endpoint, "--sizes", "64K,1M",
                 "--jobs", "1,8", "--duration", "8s", "--dataset", str(tmp_path / "ds"), "--plot", str(plot), "--json")
    doc = json.loads(out)
    assert doc["remote"]["kind"] == "s3" and doc["remote"]["endpoint_url"] == seaweed.endpoint
    for c in doc["cells"]:
        check_cell(c)
    d = doc["dataset"]
    assert d["files"] == len(source) and d["bytes"] == sum(map(len, source.values()))
    # dedup: the copy of big.bin is neither uploaded nor downloaded twice; every other byte comes back
    assert d["push"]["bytes"] <= d["bytes"] - (3 << 20) + 4096 * d["push"]["packs"]
    assert d["pull"]["bytes"] == d["bytes"] - (3 << 20)
    assert set(d["phases"]) == {"scan", "hash", "upload", "download", "verify"}
    assert sum(d["shares"].values()) == pytest.approx(1.0, abs=0.01)
    assert files_under(tmp_path / "ds") == source  # the dataset is only read
    assert bucket_keys(seaweed.endpoint, bucket) == before  # clean-up left the bucket as it was
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


def test_named_remote_of_the_project(project: Path, run, seaweed, bucket) -> None:
    run("remote", "add", "-d", "store", f"s3://{bucket}")
    run("remote", "modify", "store", "endpoint_url", seaweed.endpoint)
    out, _ = run("bench", "store", "--sizes", "16K", "--jobs", "4", "--duration", "1s", "--json")
    doc = json.loads(out)
    assert doc["remote"]["name"] == "store" and doc["remote"]["url"] == f"s3://{bucket}"
    assert cells(doc, "put")[0]["requests"] > 0
    assert bucket_keys(seaweed.endpoint, bucket) == []


def test_http_remote_reads_existing_packs(tmp_path: Path, project: Path, run, make_images) -> None:
    remote = tmp_path / "remote"
    setup_registry(project, run, make_images, str(remote))
    run("push")
    before = tree_snapshot(remote)
    server = start_http(remote)
    try:
        run("remote", "add", "web", server.url)
        out, _ = run("bench", "web", "--sizes", "4K,64K", "--jobs", "1,4", "--duration", "2s", "--json")
        doc = json.loads(out)
        assert doc["remote"]["read_only"] is True
        assert not cells(doc, "put") and not cells(doc, "list")  # nothing written; HTTP cannot list
        for c in cells(doc, "get") + cells(doc, "range"):
            check_cell(c)
        assert tree_snapshot(remote) == before
        _, err = run("bench", "web", "--duration", "1s", "--dataset", str(project / "ds"), rc=2)
        assert "read-only" in err
    finally:
        server.stop()


def test_read_only_s3_remote_is_not_written(project: Path, run, seaweed, bucket, make_images) -> None:
    setup_registry(project, run, make_images, f"s3://{bucket}/reg", ("endpoint_url", seaweed.endpoint))
    run("push")
    before = bucket_keys(seaweed.endpoint, bucket)
    run("remote", "modify", "store", "read_only", "true")
    out, _ = run("bench", "store", "--sizes", "64K", "--jobs", "2", "--duration", "2s", "--json")
    doc = json.loads(out)
    assert not cells(doc, "put")
    check_cell(cells(doc, "get")[0])
    check_cell(cells(doc, "list")[0])
    assert bucket_keys(seaweed.endpoint, bucket) == before


def test_unreachable_endpoint_fails_fast(tmp_path: Path, run, seaweed, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    _, err = run("bench", "s3://nowhere-bucket", "--endpoint-url", f"http://127.0.0.1:{port}", "--duration", "30s",
                 rc=7)  # storage unreachable: its own exit code
    assert time.monotonic() - t0 < 30  # it gives up at the first check, not after retrying for its budget
    assert "cannot use s3://nowhere-bucket" in err and "connect" in err


def test_missing_bucket_is_a_clear_error(tmp_path: Path, run, seaweed, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    _, err = run("bench", "s3://no-such-bucket-here", "--endpoint-url", seaweed.endpoint, "--duration", "30s", rc=7)
    assert time.monotonic() - t0 < 30  # it gives up at the first check, not after its budget
    # SeaweedFS answers AccessDenied (not NoSuchBucket) to a write into a bucket that does not exist
    assert "cannot use s3://no-such-bucket-here/fastreg-bench-" in err
    assert "bucket does not exist" in err or "access denied" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--sizes", "64Q"], "is not a size"),
    (["--sizes", "0"], "out of range"),
    (["--jobs", "0"], "concurrency from 1"),
    (["--jobs", "8,x"], "concurrency from 1"),
    (["--duration", "soon"], "not a duration"),
    (["--duration", "0s"], "more than zero"),
    (["--plot", "/no/such/dir/p.png"], "does not exist"),
])
def test_bad_arguments(tmp_path: Path, run, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    _, err = run("bench", "r", *args, rc=2)
    assert message in err
    assert list((tmp_path / "r").iterdir()) == []


def test_unknown_target(tmp_path: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, err = run("bench", "nosuchremote", rc=2)
    assert "'nosuchremote' is not an existing directory" in err


def test_parsers_and_percentile() -> None:
    assert parse_sizes("1M,64K,64k,2MiB") == [65536, 1 << 20, 2 << 20]
    assert parse_jobs("32,1,8") == [1, 8, 32]
    assert parse_duration("1.5m") == 90 and parse_duration("250ms") == 0.25 and parse_duration("7") == 7
    with pytest.raises(UsageError):
        parse_sizes("2G")
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100 and percentile([3.0], 95) == 3.0


def test_ctrl_c_still_cleans_up(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    remote = tmp_path / "remote"
    remote.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "fastreg", "bench", str(remote), "--sizes", "64K", "--jobs", "1,8",
                          "--duration", "30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 20
    while not list(remote.rglob("8-*")) and time.monotonic() < deadline:  # the put cells at 8 jobs run
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err.decode().strip() == "error: interrupted"
    assert list(remote.iterdir()) == []


def test_several_backends_side_by_side(tmp_path: Path, project: Path, run, seaweed, bucket, gcs, gcs_bucket,
                                       azurite, container, sshd, ssh_home) -> None:
    """The remotes a team could choose, measured in one run with the same cells for each: one
    JSON document per backend, one comparison table, one plot; each backend left as it was."""
    pytest.importorskip("matplotlib")
    from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY

    for name, url, options in (
            ("s3", f"s3://{bucket}/b", [("endpoint_url", seaweed.endpoint)]),
            ("gcs", f"gs://{gcs_bucket}/b", [("endpoint_url", gcs.endpoint)]),
            ("az", f"azure://{container}/b", [("account_name", AZURITE_ACCOUNT), ("account_key", AZURITE_KEY),
                                              ("endpoint_url", azurite.endpoint)]),
            ("box", sshd.url(str(tmp_path / "sftp")), [("keyfile", sshd.keyfile)])):
        run("remote", "add", name, url)
        for option, value in options:
            run("remote", "modify", name, option, value)
    (tmp_path / "local").mkdir()
    args = ["bench", "s3", "gcs", "az", "box", str(tmp_path / "local"), "--sizes", "64K", "--jobs", "1,4",
            "--duration", "2s"]
    out, _ = run(*args, "--json")
    doc = json.loads(out)
    assert [r["remote"]["kind"] for r in doc["runs"]] == ["s3", "gs", "azure", "ssh", "local"]
    shapes = [[(c["op"], c["size"], c["jobs"]) for c in r["cells"]] for r in doc["runs"]]
    assert all(s == shapes[0] for s in shapes) and len(shapes[0]) >= 4  # the same cells for each
    for r in doc["runs"]:
        for c in r["cells"]:
            check_cell(c)
    plot = tmp_path / "compare.png"
    out, _ = run(*args, "--plot", str(plot))
    table = out[out.index("fastreg bench: 5 backends"):]
    assert all(u in table for u in (f"s3://{bucket}/b", f"gs://{gcs_bucket}/b", f"azure://{container}/b"))
    rows = [line for line in table.splitlines() if line.startswith(("put ", "get "))]
    assert rows and all(len(line.split()) == 3 + 2 * 5 for line in rows)  # op size jobs, then MiB/s p50 x5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bucket_keys(seaweed.endpoint, bucket) == [] and not any((tmp_path / "local").iterdir())
    assert not (tmp_path / "sftp").exists() or not any(p.is_file() for p in (tmp_path / "sftp").rglob("*"))

"""The seed scenario and registry consumption: import, update, get, list and the Python API, by
Git URL and revision, against a local-directory remote, SeaweedFS (S3) and read-only HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import fastreg.api
from fastreg.registry import ops as reg
from fastreg.repo.project import Project
from tests.helpers import files_under, git, make_registry
from tests.servers import start_http


def scenario(registry: Path, versions: dict[str, dict], consumer: Path, run) -> None:
    url = str(registry)
    out, _ = run("import", url, "use-cases/cats-dogs", "--rev", "cats-dogs-v1")
    assert files_under(consumer / "cats-dogs") == versions["v1"]
    assert "/cats-dogs" in (consumer / ".gitignore").read_text()
    meta = (consumer / "cats-dogs.fastreg").read_text()
    assert 'rev = "cats-dogs-v1"' in meta and "rev_lock = " in meta and url in meta
    new_bytes = sum(len(v) for k, v in versions["v2"].items() if k not in versions["v1"])
    res = reg.update(Project.find(), "cats-dogs.fastreg", "cats-dogs-v2", None)
    assert files_under(consumer / "cats-dogs") == versions["v2"]
    assert res.downloaded == new_bytes  # only the new images travel
    out, _ = run("update", "cats-dogs.fastreg")
    assert "up to date" in out  # pinned to a tag: a plain update stays
    out, _ = run("status")
    assert "up to date" in out


def test_seed_scenario_local_remote(tmp_path: Path, project: Path, run, make_images, consumer: Path,
                                    monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    monkeypatch.chdir(consumer)
    scenario(project, versions, consumer, run)
    # without --rev, import follows the default branch and a plain update moves with it
    run("import", str(project), "use-cases/cats-dogs", "-o", "latest")
    assert files_under(consumer / "latest") == versions["v2"]
    monkeypatch.chdir(project)
    (project / "use-cases/cats-dogs/data/train/cats/cat.0001.jpg").unlink()
    run("add", "use-cases/cats-dogs")
    run("push")
    git(project, "commit", "-qam", "v3: one cat less")
    monkeypatch.chdir(consumer)
    out, _ = run("status")
    assert "import source default branch moved to" in out and "fastreg update latest.fastreg" in out
    assert "cats-dogs:" not in out  # pinned to a tag: never reported
    out, _ = run("update", "latest.fastreg")
    assert "Updated latest" in out
    out, _ = run("status")
    assert "up to date" in out
    assert not (consumer / "latest/data/train/cats/cat.0001.jpg").exists()  # removed upstream, removed here
    assert len(files_under(consumer / "latest")) == len(versions["v2"]) - 1


def test_get_list_and_api_without_a_project(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    versions = make_registry(project, run, make_images, str(tmp_path / "remote"))
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    url = str(project)
    image = "use-cases/cats-dogs/data/train/cats/cat.0001.jpg"
    out, _ = run("get", url, image)
    assert (outside / "cat.0001.jpg").read_bytes() == versions["v2"]["data/train/cats/cat.0001.jpg"]
    assert os.access(outside / "cat.0001.jpg", os.W_OK)
    res = reg.get(url, image, "again.jpg", None, None)
    assert res.downloaded == 0  # the user-level cache has it
    run("get", url, "use-cases/cats-dogs/data/validation", "-o", "val", "--rev", "cats-dogs-v1")
    assert files_under(outside / "val") == {k[len("data/validation/"):]: v for k, v in versions["v1"].items()
                                            if k.startswith("data/validation/")}
    run("get", url, "README.md")
    assert (outside / "README.md").read_text() == "a registry\n"
    _, err = run("get", url, "README.md", rc=1)
    assert "exists already" in err
    # list
    out, _ = run("list", url)
    assert "README.md" in out and "use-cases/" in out
    out, _ = run("list", url, "use-cases/cats-dogs/data/train", "--json")
    listed = json.loads(out)
    assert {e["path"] for e in listed} == {"use-cases/cats-dogs/data/train/cats", "use-cases/cats-dogs/data/train/dogs"}
    out, _ = run("list", "-R", "--tracked-only", url)
    assert out.count("\n") == len(versions["v2"]) + 1
    # Python API
    with fastreg.api.open(image, repo=url, rev="cats-dogs-v1") as f:
        assert f.read() == versions["v1"]["data/train/cats/cat.0001.jpg"]
    assert fastreg.api.read("README.md", repo=url) == "a registry\n"


def test_registry_errors(tmp_path: Path, project: Path, run, make_images, consumer: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "no remote")
    monkeypatch.chdir(consumer)
    url = str(project)
    _, err = run("import", url, "ds", rc=1)
    assert "no default remote" in err and url in err
    _, err = run("get", url, "ds", "--rev", "no-such-rev", rc=1)
    assert "revision 'no-such-rev' not found" in err
    _, err = run("get", url, "../../etc/passwd", rc=1)
    assert "without '..'" in err
    _, err = run("get", url, "missing/file", rc=1)
    assert "not found" in err
    (consumer / "mine.txt").write_text("x")
    run("add", "mine.txt")
    _, err = run("update", "mine.txt.fastreg", rc=1)
    assert "not an import" in err
    _, err = run("import", url, "ds", "-o", "mine.txt", rc=1)
    assert "exists already" in err and "--force" in err


def test_seed_scenario_on_s3(tmp_path: Path, project: Path, run, make_images, consumer: Path, monkeypatch,
                             seaweed, bucket) -> None:
    versions = make_registry(project, run, make_images, f"s3://{bucket}/registry",
                             ("endpoint_url", seaweed.endpoint))
    monkeypatch.chdir(consumer)
    scenario(project, versions, consumer, run)


def test_seed_scenario_over_read_only_http(tmp_path: Path, project: Path, run, make_images, consumer: Path,
                                           monkeypatch) -> None:
    remote = tmp_path / "remote"
    versions = make_registry(project, run, make_images, str(remote))
    server = start_http(remote)
    try:
        # The registry publishes its remote over HTTP: consumers read through it, pushes fail clearly.
        monkeypatch.chdir(project)
        run("remote", "add", "-d", "-f", "store", server.url)
        git(project, "commit", "-qam", "publish over HTTP")
        git(project, "tag", "-f", "cats-dogs-v2")
        _, err = run("push", rc=1)
        assert "read-only" in err
        monkeypatch.chdir(consumer)
        scenario(project, versions, consumer, run)
    finally:
        server.stop()


def test_get_one_file_reads_only_its_path(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                          seaweed, bucket) -> None:
    """One image out of a sharded directory: the tree nodes on its path, its node's locator hint,
    one index segment and one ranged GET, not the whole manifest or every segment."""
    from tests.faultproxy import FaultProxy

    with FaultProxy(seaweed.endpoint, error_rate=0, reset_rate=0, delay_rate=0) as proxy:
        os.chdir(project)
        ds = project / "ds"
        make_images(ds, train=2400, validation=0, mean_kb=2)  # 1,200 cats: a sharded directory
        run("remote", "add", "-d", "store", f"s3://{bucket}/r")
        run("remote", "modify", "store", "endpoint_url", proxy.url)
        run("remote", "modify", "store", "pack_size", "1M")
        run("add", "ds")
        run("push")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "data")
        outside = tmp_path / "outside"
        outside.mkdir()
        monkeypatch.chdir(outside)
        image = "ds/data/train/cats/cat.0700.jpg"
        before = dict(proxy.counts)
        run("get", str(project), image)
        moved = proxy.counts["bytes_out"] - before["bytes_out"]
        requests = proxy.counts["requests"] - before["requests"]
    size = (outside / "cat.0700.jpg").stat().st_size
    assert (outside / "cat.0700.jpg").read_bytes() == (ds / "data/train/cats/cat.0700.jpg").read_bytes()
    whole_tree = sum(p.stat().st_size for p in (project / ".fastreg/cache/trees").rglob("*") if p.is_file())
    all_segments = 24 * 2400  # one 24-byte index entry per image
    assert moved < size + 0.6 * (whole_tree + all_segments), (moved, size, whole_tree)
    assert requests <= 12, requests


def test_api_open_reads_only_the_chunks_it_needs(tmp_path: Path, project: Path, run, monkeypatch,
                                                 seaweed, bucket) -> None:
    from bench.gen import large
    from tests.faultproxy import FaultProxy

    with FaultProxy(seaweed.endpoint, error_rate=0, reset_rate=0, delay_rate=0) as proxy:
        os.chdir(project)
        large(project / "model.bin", 32 << 20, seed=4)
        run("remote", "add", "-d", "store", f"s3://{bucket}/r")
        run("remote", "modify", "store", "endpoint_url", proxy.url)
        run("add", "model.bin")
        run("push")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "model")
        monkeypatch.chdir(tmp_path)
        whole = (project / "model.bin").read_bytes()
        before = proxy.counts["bytes_out"]
        with fastreg.api.open("model.bin", repo=str(project)) as f:
            assert f.read(100) == whole[:100]
            f.seek(20 << 20)
            assert f.read(5000) == whole[20 << 20 : (20 << 20) + 5000]
            f.seek(-10, os.SEEK_END)
            assert f.read() == whole[-10:]
        moved = proxy.counts["bytes_out"] - before
    assert moved < 2 << 20, moved  # a few 64 KiB chunks and index entries, not the 32 MiB file


def test_corrupt_remote_leaves_no_output(tmp_path: Path, project: Path, run, make_images, consumer: Path,
                                         monkeypatch) -> None:
    """get and import write the output while the data downloads: when a pack turns out corrupt
    half-way, the command fails with the integrity error and nothing is left at the output, no
    metafile, no .gitignore entry."""
    remote = tmp_path / "remote"
    make_registry(project, run, make_images, str(remote))
    packs = sorted((remote / "packs").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    victim = packs[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    monkeypatch.chdir(consumer)
    before = sorted(p.name for p in consumer.iterdir())
    _, err = run("import", str(project), "use-cases/cats-dogs", rc=3)
    assert err.startswith("error: ") and "corrupt" in err
    assert sorted(p.name for p in consumer.iterdir()) == before  # no cats-dogs, no cats-dogs.fastreg
    assert not (consumer / ".gitignore").exists() or "cats-dogs" not in (consumer / ".gitignore").read_text()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    _, err = run("get", str(project), "use-cases/cats-dogs", "-o", "all", rc=3)
    assert "corrupt" in err
    assert list(out.iterdir()) == []


def test_a_store_restart_of_a_few_seconds_fails_no_command_and_no_epoch(tmp_path: Path, project: Path, run,
                                                                         make_images, monkeypatch, seaweed,
                                                                         bucket) -> None:
    """Every request gets 503 for 4 s (the store restarting) while push, pull and a training
    epoch run: each backs off and goes on (retries within the remote's retry_budget)."""
    from fastreg.data import RegistryDataset
    from tests.faultproxy import FaultProxy

    with FaultProxy(seaweed.endpoint, error_rate=0, reset_rate=0, delay_rate=0) as proxy:
        os.chdir(project)
        make_images(project / "ds", train=20, validation=0, mean_kb=4)
        run("remote", "add", "-d", "store", f"s3://{bucket}/r")
        run("remote", "modify", "store", "endpoint_url", proxy.url)
        run("add", "ds")
        proxy.outage(4)
        run("push")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "data")
        reader = tmp_path / "reader"
        subprocess.run(["git", "clone", "-q", str(project), str(reader)], check=True)
        monkeypatch.chdir(reader)
        proxy.outage(4)
        run("pull")
        assert files_under(reader / "ds") == files_under(project / "ds")
        proxy.outage(4)
        ds = RegistryDataset(str(project), "ds", cache_dir=tmp_path / "c")
        assert len([ds[i] for i in range(len(ds))]) == 20
        ds.close()
        assert proxy.counts["outage"] >= 3
        # a budget of 0 gives up at once: the error names the option
        run("remote", "modify", "--local", "store", "retry_budget", "0")
        shutil.rmtree(reader / ".fastreg/cache")
        shutil.rmtree(reader / "ds")
        proxy.outage(3)
        _, err = run("pull", rc=7)
        assert "retry_budget" in err

"""`fastreg check`: each kind of damage to a remote is found and named, a push of a project that
has the data puts it back, a clean remote checks clean, a read-only HTTP remote can be checked,
and the local cache can be checked and repaired. On a local-directory remote and on SeaweedFS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Remote, file_id, files_under, largest, setup_project
from tests.servers import start_http

DAMAGE = {
    "missing-pack": lambda r: r.delete(largest(r, "packs/")),
    "truncated-pack": lambda r: (k := largest(r, "packs/"), r.write(k, r.read(k)[: len(r.read(k)) // 2])),
    "damaged-pack": lambda r: (k := largest(r, "packs/"), d := bytearray(r.read(k)),
                               d.__setitem__(len(d) // 2, d[len(d) // 2] ^ 0xFF), r.write(k, bytes(d))),
    "missing-chunk": lambda r: r.delete(largest(r, "index/")),  # a missing segment: its chunks are unknown
    "missing-tree": lambda r: r.delete(largest(r, "trees/")),
}


def damage_found_and_repaired(tmp_path: Path, project: Path, run, monkeypatch, remote: Remote, kind: str,
                              original: dict[str, bytes]) -> None:
    out, _ = run("check", "--read-data")
    assert out.splitlines()[-1] == "No problems found."
    DAMAGE[kind](remote)
    read = ["--read-data"] if kind == "damaged-pack" else []  # a flipped byte needs the data read
    if kind != "damaged-pack":
        out, _ = run("check", rc=3, error=False)
        assert f"\n{kind}: " in out and "breaks ds" in out
    out, _ = run("check", "--json", *read, rc=3, error=False)
    doc = json.loads(out)
    assert not doc["clean"] and [p["kind"] for p in doc["problems"]] == [kind]
    assert doc["problems"][0]["affected"] >= 1 and doc["problems"][0]["affects"][0].startswith("ds")
    if kind in ("missing-pack", "truncated-pack", "damaged-pack", "missing-chunk"):
        out, _ = run("status", "--remote")
        assert "not in remote store" in out  # what check found is not counted as there any more
    out, _ = run("push")
    if kind in ("missing-pack", "truncated-pack", "damaged-pack"):
        assert "Repaired 1 damaged pack" in out
    out, _ = run("status", "--remote")
    assert "Everything is in remote store" in out
    out, _ = run("check", "--read-data")
    assert out.splitlines()[-1] == "No problems found."
    mate = tmp_path / f"mate-{kind}"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    monkeypatch.chdir(mate)
    run("pull")
    assert files_under(mate / "ds") == original


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_on_a_local_remote(tmp_path: Path, project: Path, run, make_images, monkeypatch, kind: str) -> None:
    original = setup_project(project, run, make_images, str(tmp_path / "remote"))
    damage_found_and_repaired(tmp_path, project, run, monkeypatch, Remote(root=tmp_path / "remote"), kind, original)


@pytest.mark.parametrize("kind", ["missing-pack", "damaged-pack", "missing-tree"])
def test_damage_on_s3(tmp_path: Path, project: Path, run, make_images, monkeypatch, seaweed, bucket,
                      kind: str) -> None:
    original = setup_project(project, run, make_images, f"s3://{bucket}/r", ("endpoint_url", seaweed.endpoint))
    damage_found_and_repaired(tmp_path, project, run, monkeypatch, Remote(endpoint=seaweed.endpoint, bucket=bucket),
                              kind, original)


def test_clean_remote_subset_and_read_only_http(tmp_path: Path, project: Path, run, make_images) -> None:
    setup_project(project, run, make_images, str(tmp_path / "remote"))
    doc = json.loads(run("check", "--json")[0])
    assert doc["clean"] and doc["problems"] == [] and doc["files"] == 50 and doc["packs_read"] == 0
    packs = doc["segments"]
    assert packs >= 2
    doc = json.loads(run("check", "--json", "--read-data-subset", "1")[0])
    assert doc["packs_read"] == 1
    doc = json.loads(run("check", "--json", "--read-data")[0])
    assert doc["packs_read"] == packs
    _, err = run("check", "--read-data-subset", "150%", rc=2)
    assert "percentage" in err
    server = start_http(tmp_path / "remote")
    try:
        run("remote", "add", "web", server.url)
        out, _ = run("check", "-r", "web", "--read-data")
        assert out.splitlines()[-1] == "No problems found." and f"read {packs} packs" in out
        pack = largest(Remote(root=tmp_path / "remote"), "packs/")
        Remote(root=tmp_path / "remote").delete(pack)
        tree = largest(Remote(root=tmp_path / "remote"), "trees/")
        Remote(root=tmp_path / "remote").delete(tree)  # the local cache still has it: check asks the remote
        out, _ = run("check", "-r", "web", "--read-data", rc=3, error=False)
        assert "missing-pack: " in out and pack.split("/")[-1] in out
        assert "missing-tree: " in out and tree.split("/")[-1] in out
    finally:
        server.stop()


def test_check_of_the_cache_and_repair(project: Path, run, make_images) -> None:
    make_images(project / "ds", train=4, validation=2)
    run("add", "ds")
    victim = sorted((project / "ds").rglob("*.jpg"))[0]
    digest = file_id(victim.read_bytes()).hex()
    obj = project / ".fastreg/cache/files" / digest[:2] / digest[2:]
    out, _ = run("check", "--cache")
    assert "No problems found." in out
    obj.chmod(0o644)
    obj.write_bytes(b"bit rot")
    out, _ = run("check", "--cache", rc=3, error=False)
    assert f"corrupt-file: {obj}" in out and victim.relative_to(project).as_posix() in out
    _, err = run("check", "--repair", rc=2)
    assert "--cache" in err
    out, _ = run("check", "--cache", "--repair", rc=3, error=False)
    assert "moved aside" in out and not obj.exists()
    assert (project / ".fastreg/cache/damaged" / digest).read_bytes() == b"bit rot"
    run("add", "ds")  # the workspace still has the file: add stores it again
    out, _ = run("check", "--cache")
    assert "No problems found." in out
    shutil.rmtree(project / "ds")
    run("checkout")
    assert victim.exists()

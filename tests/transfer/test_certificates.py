"""Tree nodes on a remote certify their subtrees (they are written after every pack, deepest
first): a push with nothing new reads no tree node and walks no file, a push after adding files
to one folder reads only the nodes on that folder's path, a fresh clone verifies the remote's
nodes once, and an interrupted push never leaves a node whose subtree is incomplete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fastreg.errors import StorageError
from fastreg.objects import tree
from fastreg.repo.cache import Cache
from fastreg.repo.project import Project
from fastreg.repo.push import push
from fastreg.storage.local import LocalStore
from tests.helpers import files_under, git


@pytest.fixture
def reads(monkeypatch) -> list[bytes]:
    """Tree nodes read from the local cache, in order."""
    seen: list[bytes] = []
    real = Cache.get_tree

    def counting(self: Cache, digest: bytes) -> bytes:
        seen.append(digest)
        return real(self, digest)

    monkeypatch.setattr(Cache, "get_tree", counting)
    return seen


def dataset(project: Path, make_images, folders: int = 6) -> Path:
    ds = project / "ds"
    for i in range(folders):
        make_images(ds / f"class{i}", train=10, validation=0, mean_kb=1, start=1 + 100 * i)
    return ds


def remote_trees(remote: Path) -> set[bytes]:
    # (a dot name is a write still in flight in a worker thread of the push that just failed)
    return {bytes.fromhex(p.name) for p in (remote / "trees").rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_pushes_read_only_what_changed(tmp_path: Path, project: Path, run, make_images, reads, monkeypatch) -> None:
    ds = dataset(project, make_images)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    all_nodes = len(remote_trees(tmp_path / "remote"))
    reads.clear()
    res = push(Project.find(), [], None, None)
    assert (res.packs, res.bytes) == (0, 0) and reads == []  # nothing new: no node read, no file walked
    assert res.requests <= 5
    make_images(ds / "class3", train=6, validation=0, mean_kb=1, start=900)
    run("add", "ds")
    reads.clear()
    res = push(Project.find(), [], None, None)
    assert res.packs == 1
    touched = set(reads)
    assert 0 < len(touched) <= 6 < all_nodes, (len(touched), all_nodes)  # ds, class3, its data/train/... path
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    monkeypatch.chdir(clone)
    run("pull")
    assert files_under(clone / "ds") == files_under(ds)
    # a clone whose mirror knows nothing: one listing of trees/, every node checked once, nothing sent
    reads.clear()
    res = push(Project.find(), [], None, None)
    assert res.packs == 0 and len(set(reads)) >= all_nodes // 2
    reads.clear()
    res = push(Project.find(), [], None, None)
    assert res.packs == 0 and reads == []


def test_an_interrupted_push_leaves_no_certificate_for_an_incomplete_subtree(
        tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    dataset(project, make_images)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    real_put = LocalStore.put
    trees_written = 0

    async def failing_put(self: LocalStore, key: str, data: bytes | bytearray | memoryview) -> None:
        nonlocal trees_written
        if key.startswith("trees/"):
            trees_written += 1
            if trees_written > 5:
                raise StorageError("simulated: the connection dropped")
        await real_put(self, key, data)

    monkeypatch.setattr(LocalStore, "put", failing_put)
    run("push", rc=7)  # the storage failed
    on_remote = remote_trees(tmp_path / "remote")
    assert 0 < len(on_remote) < 20
    cache = Project.find().cache
    for node in on_remote:  # every node there has every node below it there
        below = set(tree.walk_dirs(cache, node)) if tree.shards_of(cache.get_tree(node), node) == [] else \
            {node, *tree.shards_of(cache.get_tree(node), node)}
        assert below <= on_remote | {node}, node.hex()
    monkeypatch.setattr(LocalStore, "put", real_put)
    run("push")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    out, _ = run("check", "--read-data")
    assert out.splitlines()[-1] == "No problems found."

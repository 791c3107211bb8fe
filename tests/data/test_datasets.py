"""fastreg.data against real registries: SeaweedFS and a local-directory remote, real worker
processes (spawned and forked), the sample cache filled by two processes at once, damage."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from fastreg.data import RegistryDataset, RegistryIterableDataset, Sample
from fastreg.errors import IntegrityError
from tests.data.conftest import DATA, Reg, fastreg
from tests.helpers import git


def _shard(args: tuple[RegistryIterableDataset, int]) -> list[tuple[str, bytes, int]]:
    ds, epoch = args
    ds.set_epoch(epoch)
    return [(s.path, s.data, s.label) for s in ds]


def _label(path: str) -> int:
    rel = path[len(DATA) + 1:]
    return {"cats": 0, "dogs": 1}[rel.split("/")[0]] if "/" in rel else -1


def test_map_style_reads_every_file_in_path_order(reg_s3: Reg, tmp_path: Path) -> None:
    ds = RegistryDataset(reg_s3.url, DATA, rev="v1", cache_dir=tmp_path / "c")
    want = sorted(reg_s3.v1)
    assert len(ds) == len(want)
    assert ds.classes == ["cats", "dogs"] and ds.class_to_idx == {"cats": 0, "dogs": 1}
    got = [ds[i] for i in range(len(ds))]
    assert [s.path for s in got] == want
    assert all(s.data == reg_s3.v1[s.path] and s.label == _label(s.path) for s in got)
    assert ds[-1] == got[-1]
    batch = ds.__getitems__([5, 0, 5, len(ds) - 1])  # what a DataLoader asks for a batch
    assert [s.path for s in batch] == [want[5], want[0], want[5], want[-1]]
    with pytest.raises(IndexError):
        ds[len(ds)]
    v2 = RegistryDataset(reg_s3.url, DATA, rev="v2", cache_dir=tmp_path / "c", transform=len)
    assert len(v2) == len(reg_s3.v2)
    assert v2[0] == Sample(len(reg_s3.v2[sorted(reg_s3.v2)[0]]), _label(sorted(reg_s3.v2)[0]), sorted(reg_s3.v2)[0])
    ds.close()
    v2.close()


def test_every_sample_once_across_4_workers_and_2_ranks_in_spawned_processes(reg_s3: Reg, tmp_path: Path) -> None:
    shards = [RegistryIterableDataset(reg_s3.url, DATA, rev="v2", seed=11, shuffle_buffer=30, rank=r, world_size=2,
                                      worker=w, num_workers=4, cache_dir=tmp_path / "c")
              for r in range(2) for w in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        got = pool.map(_shard, [(ds, 0) for ds in shards])
    paths = [p for shard in got for p, _, _ in shard]
    assert sorted(paths) == sorted(reg_s3.v2)  # every sample exactly once
    assert all(data == reg_s3.v2[p] and label == _label(p) for shard in got for p, data, label in shard)
    per_rank = [sum(len(got[r * 4 + w]) for w in range(4)) for r in range(2)]
    assert abs(per_rank[0] - per_rank[1]) <= 1  # ranks get the same count (to one sample)
    for shard, ds in zip(got, shards, strict=True):
        ds.close()
        assert len(shard) == ds.shard_sizes()[ds.worker]


def test_order_is_fixed_by_seed_and_epoch(reg_local: Reg, tmp_path: Path) -> None:
    def order(seed: int, epoch: int) -> list[str]:
        ds = RegistryIterableDataset(reg_local.url, DATA, rev="v1", seed=seed, shuffle_buffer=20,
                                     cache_dir=tmp_path / "c")
        ds.set_epoch(epoch)
        out = [s.path for s in ds]
        ds.close()
        return out

    first = order(1, 0)
    assert sorted(first) == sorted(reg_local.v1)
    assert order(1, 0) == first
    assert order(1, 1) != first and sorted(order(1, 1)) == sorted(first)
    assert order(2, 0) != first
    assert first != sorted(first)  # shuffled, not path order


def test_a_resumed_epoch_yields_exactly_what_was_not_seen(reg_local: Reg, tmp_path: Path) -> None:
    def fresh() -> RegistryIterableDataset:
        return RegistryIterableDataset(reg_local.url, DATA, rev="v2", seed=5, shuffle_buffer=25,
                                       cache_dir=tmp_path / "c")

    whole = fresh()
    whole.set_epoch(3)
    full = [s.path for s in whole]
    ds = fresh()
    ds.set_epoch(3)
    it = iter(ds)
    head = [next(it).path for _ in range(57)]
    state = ds.state_dict()
    assert state["epoch"] == 3 and state["consumed"] == 57
    resumed = fresh()
    resumed.load_state_dict(state)
    rest = [s.path for s in resumed]
    assert head + rest == full
    assert [s.path for s in resumed] == full  # the state served its epoch once
    with pytest.raises(ValueError):
        fresh().load_state_dict({**state, "seed": 6})
    for d in (whole, ds, resumed):
        d.close()


def test_cache_stays_under_its_limit_with_two_processes_filling_it(reg_local: Reg, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    total = sum(len(v) for v in reg_local.v2.values())
    limit = total // 3
    ds = [RegistryIterableDataset(reg_local.url, DATA, rev="v2", seed=s, cache_dir=cache, cache_limit=limit)
          for s in (1, 2)]
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            used = sum(p.stat().st_size for p in (cache / "objects").rglob("*") if p.is_file())
            peak[0] = max(peak[0], used)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            got = pool.map(_shard, [(d, 0) for d in ds])
    finally:
        stop.set()
        watcher.join()
    assert all(sorted(p for p, _, _ in g) == sorted(reg_local.v2) for g in got)
    assert all(data == reg_local.v2[p] for g in got for p, data, _ in g)
    on_disk = sum(p.stat().st_size for p in (cache / "objects").rglob("*") if p.is_file())
    assert 0 < on_disk <= limit and peak[0] <= limit
    assert int((cache / "usage").read_text()) == on_disk
    for d in ds:
        d.close()


def test_epoch_2_reads_the_local_cache(reg_local: Reg, tmp_path: Path) -> None:
    ds = RegistryIterableDataset(reg_local.url, DATA, rev="v1", seed=0, cache_dir=tmp_path / "c")
    first = {s.path: s.data for s in ds}
    remote = reg_local.root.parent / "remote"
    shutil.move(remote, remote.with_name("remote-away"))  # no remote for epoch 2
    try:
        ds.set_epoch(1)
        second = {s.path: s.data for s in ds}
        m = RegistryDataset(reg_local.url, DATA, rev="v1", cache_dir=tmp_path / "c")  # the index is cached too
        assert [m[i].data for i in range(len(m))] == [reg_local.v1[p] for p in sorted(reg_local.v1)]
        m.close()
    finally:
        shutil.move(remote.with_name("remote-away"), remote)
    assert first == second == reg_local.v1
    ds.close()


def test_a_damaged_cache_entry_is_read_again_from_the_remote(reg_local: Reg, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    ds = RegistryIterableDataset(reg_local.url, DATA, rev="v1", seed=0, cache_dir=cache)
    assert {s.path: s.data for s in ds} == reg_local.v1
    entries = [p for p in (cache / "objects").rglob("*") if p.is_file() and p.stat().st_size]
    assert entries  # the epoch kept its spans
    for p in entries:  # one flipped byte in the middle of every entry
        blob = bytearray(p.read_bytes())
        blob[len(blob) // 2] ^= 1
        p.write_bytes(bytes(blob))
    ds.set_epoch(1)
    assert {s.path: s.data for s in ds} == reg_local.v1  # every sample right: the damaged were dropped
    m = RegistryDataset(reg_local.url, DATA, rev="v1", cache_dir=cache)
    assert [m[i].data for i in range(len(m))] == [reg_local.v1[p] for p in sorted(reg_local.v1)]
    ds.close()
    m.close()


def _read_in_child(ds: RegistryDataset, q: multiprocessing.Queue[object]) -> None:
    try:
        q.put([(s.path, s.data) for s in ds.__getitems__(list(range(1, len(ds))))])
    except BaseException as exc:  # reported to the parent
        q.put(repr(exc))


def test_a_worker_forked_after_the_parent_read_data_works(reg_s3: Reg, tmp_path: Path) -> None:
    ds = RegistryDataset(reg_s3.url, DATA, rev="v1", cache_dir=tmp_path / "c")
    assert ds[0].data == reg_s3.v1[ds[0].path]  # the parent has its loop, connections and index map
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(ds, q))
    child.start()
    got = q.get(timeout=120)
    child.join(timeout=60)
    assert isinstance(got, list), got
    assert dict(got) == {p: v for p, v in reg_s3.v1.items() if p != ds[0].path}
    assert ds[1].data == reg_s3.v1[ds[1].path]  # and the parent still reads
    ds.close()


def test_a_flipped_byte_in_the_store_is_an_error_never_a_sample(tmp_path: Path) -> None:
    from tests.data.conftest import build

    reg = build(tmp_path / "registry", str(tmp_path / "remote"))
    victim = max((p for p in reg.v2 if p.endswith(".jpg")), key=lambda p: len(reg.v2[p]))
    content = reg.v2[victim]
    for pack in (tmp_path / "remote" / "packs").rglob("*"):
        if pack.is_file() and content in (blob := pack.read_bytes()):
            at = blob.index(content) + len(content) // 2
            pack.write_bytes(blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1:])
            break
    else:
        raise AssertionError("the image is in no pack")
    ds = RegistryIterableDataset(reg.url, DATA, rev="v2", cache_dir=tmp_path / "c")
    seen = {}
    with pytest.raises(IntegrityError):
        for s in ds:
            seen[s.path] = s.data
    assert victim not in seen and all(reg.v2[p] == d for p, d in seen.items())
    m = RegistryDataset(reg.url, DATA, rev="v2", cache_dir=tmp_path / "c2")
    with pytest.raises(IntegrityError):
        m[sorted(reg.v2).index(victim)]
    assert m[0].data == reg.v2[m[0].path]
    ds.close()
    m.close()


def test_errors_a_user_of_open_expects_at_construction(reg_local: Reg, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="v9"):
        RegistryDataset(reg_local.url, DATA, rev="v9", cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="ds/data/nope"):
        RegistryIterableDataset(reg_local.url, "ds/data/nope", rev="v1", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="rank 2"):
        RegistryIterableDataset(reg_local.url, DATA, rev="v1", rank=2, world_size=2, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="cache_limit"):
        RegistryDataset(reg_local.url, DATA, cache_dir=tmp_path / "c", cache_limit=-1)


def test_unpushed_data_is_named_at_construction(tmp_path: Path) -> None:
    from tests.data.conftest import build

    reg = build(tmp_path / "registry", str(tmp_path / "remote"))
    (reg.root / DATA / "cats" / "new.jpg").write_bytes(os.urandom(5000))
    fastreg(reg.root, "add", "ds")
    git(reg.root, "commit", "-qam", "not pushed")
    with pytest.raises(FileNotFoundError, match="not pushed"):
        RegistryDataset(reg.url, DATA, cache_dir=tmp_path / "c")
    fastreg(reg.root, "push")
    ds = RegistryDataset(reg.url, DATA, cache_dir=tmp_path / "c")  # pushed: it reads
    victim = sorted(reg.v2)[3]
    for pack in (tmp_path / "remote" / "packs").rglob("*"):
        if pack.is_file() and reg.v2[victim] in pack.read_bytes():
            pack.unlink()  # a pack lost behind fastreg's back
    with pytest.raises(FileNotFoundError, match=victim.rpartition("/")[2]):
        ds[3]
    ds.close()


def _fsspec_in_child(url: str, path: str, q: multiprocessing.Queue[object]) -> None:
    import fsspec

    try:
        q.put(fsspec.filesystem("fastreg", repo=url, rev="v1", skip_instance_cache=True).cat(path))
    except BaseException as exc:  # reported to the parent
        q.put(repr(exc))


def test_fastreg_fsspec_in_a_forked_dataloader_worker(reg_s3: Reg) -> None:
    """fsspec drops its cached instances in a forked child, which closed the parent's reader
    there: the child ran the parent's event loop and hung on its connections. The child now
    leaves them alone and reads with its own."""
    import fsspec

    first, second = sorted(reg_s3.v1)[1:3]
    # the parent's session is open, and only fsspec's instance cache holds the filesystem
    assert fsspec.filesystem("fastreg", repo=reg_s3.url, rev="v1").cat(first) == reg_s3.v1[first]
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_fsspec_in_child, args=(reg_s3.url, second, q))
    child.start()
    got = q.get(timeout=60)
    child.join(timeout=30)
    assert got == reg_s3.v1[second]
    assert child.exitcode == 0
    assert fsspec.filesystem("fastreg", repo=reg_s3.url, rev="v1").cat(second) == reg_s3.v1[second]

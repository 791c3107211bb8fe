"""transfer/upload.py and push_plan.py alone, on an in-memory store and a real local cache: planner,
committer, metadata writer, an interrupted upload."""

from __future__ import annotations

import os

import pytest

from fastreg.errors import InvariantError, StorageError
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import FileRecord
from fastreg.repo.cache import Cache
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import layout
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer import upload as push
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.push_plan import PushTarget, PushWork, plan_push
from fastreg.transfer.view import RemoteView
from tests.transfer.stages import h, put_file, put_pack, whole


async def test_pack_planner_packs_each_missing_chunk_once(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    there, new = os.urandom(1000), os.urandom(1000)
    await put_pack(store, mirror, [there])
    recs = [whole(there), whole(new), whole(new)]
    view = RemoteView(store, mirror)
    put_file(cache, new)
    targets = [PushTarget(f"f{i}", "file", r.digest, r.size, record=r) for i, r in enumerate(recs)]
    work = await plan_push(view, cache, targets)
    assert work.estimate == 2000  # two files with a chunk the remote lacks
    planner = push.PackPlanner(view)
    (plan,) = planner.packs(work.files(), 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(new)]
    assert planner.known(h(new))  # pending until its segment is committed
    # a chunk `check` found damaged goes again, whatever the index says
    view.record_damage({digest_bytes(packfmt.PACK_HEADER + there): {h(there)}})
    assert h(there) in await view.distrust() and not view.has(h(there))
    (plan,) = push.PackPlanner(view).packs(recs, 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(there), h(new)]
    # neither here nor (readable) on the remote: f0 is left out, named; the others are still planned
    work = await plan_push(view, cache, targets)
    assert [(f.name, f.detail) for f in work.failed] == [("f0", "its data is neither in the local cache nor on "
                                                                "the remote")]
    assert work.estimate == 2000 and [r.digest for r in work.files()] == [h(new), h(new)]


def test_pack_committer_merges_into_the_mirror_and_clears_pending(cache: Cache, mirror: RemoteIndex) -> None:
    data = os.urandom(500)
    planner = push.PackPlanner(RemoteView(MemoryStore(), mirror))
    (plan,) = planner.packs([whole(data)], 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(data)]
    seg = packfmt.make_segment(h(b"pack"), 8 + 500, [(h(data), 8, 500)])
    committer = push.PackCommitter(mirror, planner)
    committer.commit("seg", seg, 1)
    assert planner.known(h(data)) and (committer.packs, committer.bytes, committer.chunks) == (1, 508, 1)
    committer.merge()
    assert mirror.has(h(data)) and planner.pending == set()


async def test_metadata_writer_writes_tree_nodes_deepest_first_and_hints(cache: Cache, mirror: RemoteIndex,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    data = os.urandom(300)
    await put_pack(store, mirror, [data])
    nodes = {n: put_tree(cache, n) for n in (b"root", b"mid-1", b"mid-2", b"leaf")}
    order: list[str] = []
    put = store.put

    async def recording(key: str, value: bytes | bytearray | memoryview) -> None:
        order.append(key)
        await put(key, value)

    monkeypatch.setattr(store, "put", recording)
    meta = push.MetadataWriter(store, cache, mirror, jobs=4)
    await meta.trees([[nodes[b"root"]], [nodes[b"mid-1"], nodes[b"mid-2"]], [nodes[b"leaf"]]])
    at = {key: i for i, key in enumerate(order)}
    for mid in (b"mid-1", b"mid-2"):  # each level after the one below it
        tk = layout.tree_key
        assert at[tk(nodes[b"leaf"])] < at[tk(nodes[mid])] < at[tk(nodes[b"root"])]
    assert store.objects[layout.tree_key(nodes[b"leaf"])][0] == b"a tree node: leaf"
    assert mirror.certified >= set(nodes.values())
    first = set(mirror.segments)
    await put_pack(store, mirror, [os.urandom(300)])  # a segment no hinted file is in
    work = PushWork(roots={b"r" * 16: lambda: [whole(data)], b"s" * 16: None},
                    node_files=lambda: [(b"t" * 16, nodes[b"leaf"], [whole(data)])], whole_trees={b"t" * 16})
    work.roots[b"t" * 16] = None  # a tree's hint is its nodes' union, not every segment
    await meta.hints(work)
    (seg,) = first
    for root in (b"r" * 16, nodes[b"leaf"], b"t" * 16):
        assert packfmt.decode_roots(store.objects[layout.roots_key(root)][0], "") == [seg]
    assert packfmt.decode_roots(store.objects[layout.roots_key(b"s" * 16)][0], "") == sorted(mirror.segments)
    with pytest.raises(InvariantError, match="after push"):
        meta.segments_of([whole(b"never pushed")])


def put_tree(cache: Cache, seed: bytes) -> bytes:
    return cache.put_tree(b"a tree node: " + seed)  # the writer only moves its bytes


class FailingStore(MemoryStore):
    """Fails the n-th pack upload (a dropped connection half-way through a push)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.packs = fail_at, 0

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if key.startswith("packs/"):
            self.packs += 1
            if self.packs == self.fail_at:
                raise StorageError(f"{self.where(key)}: connection reset")
        await super().put(key, data)


async def test_interrupted_push_keeps_what_it_committed(cache: Cache, mirror: RemoteIndex) -> None:
    datas = [os.urandom(40_000) for _ in range(10)]
    recs = [FileRecord(len(d), put_file(cache, d), b"") for d in datas]
    store = FailingStore(fail_at=3)
    work = PushWork(sources=[lambda: recs])
    opts = push.PushOptions(pack_size=100_000, jobs=1)
    with pytest.raises(StorageError, match="connection reset"):
        await push.upload(RemoteView(store, mirror), cache, work, opts)
    saved = RemoteIndex(mirror.path, mirror.url).load()
    committed = [r for r in recs if saved.has(r.digest)]
    assert committed and len(committed) < len(recs)  # the packs before the failure count
    for r in committed:  # and every chunk the mirror names is on the remote, in its pack
        loc = saved.find(r.digest)
        assert loc is not None and layout.pack_key(loc.pack) in store.objects
    store.fail_at = 0
    res = await push.upload(RemoteView(store, RemoteIndex(mirror.path, mirror.url).load()), cache, work, opts)
    assert res.chunks == len(recs) - len(committed)
    fresh = RemoteIndex(mirror.path.with_name("fresh"), mirror.url)
    await fresh.refresh(store)
    assert all(fresh.has(r.digest) for r in recs)

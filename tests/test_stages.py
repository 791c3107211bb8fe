"""The transfer pipelines' stages, each alone, on an in-memory store and a real local cache:
fetch (planner, writer, the whole download), push (planner, committer, metadata writer, an
interrupted upload) and remote gc (survey, executor's order, repack)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg.chunking import CHUNK_ENTRY
from fastreg.errors import IntegrityError, InvariantError, MissingDataError, StorageError
from fastreg.objects import pack as pk
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import FileRecord
from fastreg.plan import GcPlan, RangeRequest
from fastreg.repo.cache import Cache
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import fetch as fe
from fastreg.transfer import gc as gcm
from fastreg.transfer import layout
from fastreg.transfer import push as pu
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.push_plan import PushTarget, PushWork, plan_push
from fastreg.transfer.view import RemoteView


def h(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    c = Cache(tmp_path / "cache", ("copy",))
    c.ensure()
    return c


@pytest.fixture
def mirror(tmp_path: Path) -> RemoteIndex:
    return RemoteIndex(tmp_path / "mirror", "memory://")


def put_file(cache: Cache, data: bytes) -> bytes:
    tmp = cache.tmp_path()
    tmp.write_bytes(data)
    cache.adopt(tmp, h(data))
    return h(data)


async def put_pack(store: MemoryStore, mirror: RemoteIndex | None, chunks: list[bytes]) -> bytes:
    """A pack of `chunks` and its segment on the store (merged into `mirror` if given)."""
    body = bytearray(pk.PACK_HEADER)
    entries = []
    for c in chunks:
        entries.append((h(c), len(body), len(c)))
        body += c
    digest = digest_bytes(bytes(body))
    seg = pk.make_segment(digest, len(body), entries)
    name = digest_bytes(seg.encode()).hex()
    await store.put(layout.pack_key(digest), bytes(body))
    await store.put(layout.index_key(name), seg.encode())
    if mirror is not None:
        mirror.merge([(name, seg)])
    return digest


def whole(data: bytes) -> FileRecord:
    return FileRecord(len(data), h(data), b"")


def chunked(parts: list[bytes]) -> FileRecord:
    data = b"".join(parts)
    return FileRecord(len(data), h(data), b"".join(CHUNK_ENTRY.pack(h(p), len(p)) for p in parts))


def leftovers(cache: Cache) -> list[str]:
    return [p.name for p in cache.tmp_path().parent.iterdir()]


# -- fetch -------------------------------------------------------------------------------------

def test_fetch_planner_skips_cached_files_and_duplicates_and_batches(cache: Cache, mirror: RemoteIndex) -> None:
    a, b, c, d = (whole(os.urandom(100)) for _ in range(4))
    put_file(cache, os.urandom(1))  # unrelated
    cached = os.urandom(50)
    put_file(cache, cached)
    planner = fe.FetchPlanner(MemoryStore(), cache, mirror, fe.FetchOptions(batch_files=2))
    batches = list(planner.batches([whole(cached), a, a, b, c, d]))
    assert [sorted(x.todo) for x in batches] == [sorted([a.digest, b.digest]), sorted([c.digest, d.digest])]
    assert planner.skipped == 1


async def test_fetch_planner_coalesces_neighbours_and_names_the_file_of_a_missing_chunk(
        cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    x, y = os.urandom(1000), os.urandom(2000)
    pack = await put_pack(store, mirror, [x, y])
    planner = fe.FetchPlanner(store, cache, mirror, fe.FetchOptions())
    (batch,) = planner.batches([whole(x), whole(y)])
    assert not planner.lacks_chunks(batch)
    (req,) = planner.plan(batch)  # neighbours in one pack: one ranged GET
    assert (req.pack, req.start, req.end) == (pack, len(pk.PACK_HEADER), len(pk.PACK_HEADER) + 3000)
    assert batch.pending == 1

    gone = whole(os.urandom(10))
    (batch,) = planner.batches([gone])
    assert planner.lacks_chunks(batch)
    with pytest.raises(MissingDataError, match=gone.digest.hex()):
        planner.plan(batch)


async def planned(store: MemoryStore, cache: Cache, mirror: RemoteIndex,
                  recs: list[FileRecord]) -> tuple[fe._Batch, list[RangeRequest]]:
    planner = fe.FetchPlanner(store, cache, mirror, fe.FetchOptions())
    (batch,) = planner.batches(recs)
    return batch, planner.plan(batch)


async def test_fetch_writer_writes_only_the_good_files_of_a_damaged_response(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    x, y = os.urandom(1000), os.urandom(1000)
    await put_pack(store, mirror, [x, y])
    batch, (req,) = await planned(store, cache, mirror, [whole(x), whole(y)])
    body = bytearray(await store.get(layout.pack_key(req.pack), req.start, req.end))
    writer = fe.FetchWriter(store, cache)
    short = writer.write(batch, req, memoryview(body)[:-1])
    assert short == ([], {h(x): "truncated", h(y): "truncated"})
    assert not cache.has_file(h(x)) and not cache.has_file(h(y))
    bad = bytearray(body)
    bad[1500] ^= 1  # y's bytes: x is still good and written
    assert writer.write(batch, req, memoryview(bad)) == ([whole(x)], {h(y): "corrupt"})
    assert cache.has_file(h(x)) and not cache.has_file(h(y))
    assert writer.write(batch, req, memoryview(body)) == ([whole(x), whole(y)], {})  # x: already there
    assert cache.file_path(h(y)).read_bytes() == y
    assert leftovers(cache) == []


async def test_fetch_writer_assembles_a_file_from_two_packs(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    p1, p2 = os.urandom(3000), os.urandom(5000)
    await put_pack(store, mirror, [p1])
    await put_pack(store, mirror, [p2])
    rec = chunked([p1, p2])
    batch, reqs = await planned(store, cache, mirror, [rec])
    assert len(reqs) == 2
    writer = fe.FetchWriter(store, cache)
    done = []
    for req in reqs:
        body = memoryview(await store.get(layout.pack_key(req.pack), req.start, req.end))
        assert writer.write(batch, req, body) == ([], {})  # no one-chunk file here
        done.append(writer.assemble(batch, req, body))
    assert done[0] == [] and len(done[1]) == 1  # complete only with its last chunk
    assert not cache.has_file(rec.digest)  # not before its whole-file digest is checked
    writer.finish(done[1][0])
    assert cache.file_path(rec.digest).read_bytes() == p1 + p2
    assert batch.assemblies == {} and leftovers(cache) == []


async def test_fetch_writer_finish_discards_a_file_whose_digest_does_not_match(cache: Cache,
                                                                               mirror: RemoteIndex) -> None:
    store = MemoryStore()
    p1, p2 = os.urandom(3000), os.urandom(5000)
    await put_pack(store, mirror, [p1, p2])
    good = chunked([p1, p2])
    lying = FileRecord(good.size, h(b"something else"), good.chunks)
    batch, (req,) = await planned(store, cache, mirror, [lying])
    writer = fe.FetchWriter(store, cache)
    body = memoryview(await store.get(layout.pack_key(req.pack), req.start, req.end))
    (asm,) = writer.assemble(batch, req, body)
    with pytest.raises(IntegrityError, match=lying.digest.hex()):
        writer.finish(asm)
    assert not cache.has_file(lying.digest) and leftovers(cache) == []


async def test_fetch_files_downloads_everything_once_and_counts_it(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    small = [os.urandom(100 + i) for i in range(40)]
    parts = [os.urandom(4000) for _ in range(3)]
    await put_pack(store, mirror, [*small[:20], parts[0]])
    await put_pack(store, mirror, [*small[20:], *parts[1:]])
    recs = [whole(s) for s in small] + [chunked(parts)] + [whole(small[0])]
    arrivals = []
    opts = fe.FetchOptions(jobs=3, batch_files=7, on_arrival=lambda: arrivals.append(1))
    res = await fe.fetch_files(store, cache, mirror, iter(recs), [], opts)
    assert (res.files, res.bytes) == (41, sum(map(len, small)) + 12000)
    assert all(cache.file_path(r.digest).read_bytes() for r in recs)
    assert cache.file_path(recs[40].digest).read_bytes() == b"".join(parts)
    assert arrivals and leftovers(cache) == []
    again = await fe.fetch_files(store, cache, mirror, iter(recs), [], opts)
    assert (again.files, again.skipped) == (0, 42)


async def test_fetch_files_reports_damage_and_leaves_no_temp_files(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    parts = [os.urandom(4000) for _ in range(4)]
    pack = await put_pack(store, mirror, parts[:2])
    await put_pack(store, mirror, parts[2:])
    key = layout.pack_key(pack)
    data = bytearray(store.objects[key][0])
    data[-1] ^= 1
    store.objects[key] = (bytes(data), 0.0)
    res = await fe.fetch_files(store, cache, mirror, [chunked(parts)], [], fe.FetchOptions(jobs=2))
    assert [(d.file, d.why) for d in res.damaged] == [(chunked(parts), "corrupt")] and key in res.damaged[0].where
    assert leftovers(cache) == [] and not cache.has_file(chunked(parts).digest)
    store.objects.pop(key)  # a pack that is gone is damage too, named as missing
    res = await fe.fetch_files(store, cache, mirror, [chunked(parts)], [], fe.FetchOptions(jobs=2))
    assert [d.why for d in res.damaged] == ["missing"] and leftovers(cache) == []


# -- push --------------------------------------------------------------------------------------

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
    planner = pu.PackPlanner(view)
    (plan,) = planner.packs(work.files(), 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(new)]
    assert planner.known(h(new))  # pending until its segment is committed
    # a chunk `check` found damaged goes again, whatever the index says
    view.record_damage({digest_bytes(pk.PACK_HEADER + there): {h(there)}})
    assert h(there) in await view.distrust() and not view.has(h(there))
    (plan,) = pu.PackPlanner(view).packs(recs, 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(there), h(new)]
    with pytest.raises(MissingDataError, match="f0"):  # neither here nor (readable) on the remote
        await plan_push(view, cache, targets)


def test_pack_committer_merges_into_the_mirror_and_clears_pending(cache: Cache, mirror: RemoteIndex) -> None:
    data = os.urandom(500)
    planner = pu.PackPlanner(RemoteView(MemoryStore(), mirror))
    (plan,) = planner.packs([whole(data)], 1 << 20)
    assert [c.digest for c in plan.chunks] == [h(data)]
    seg = pk.make_segment(h(b"pack"), 8 + 500, [(h(data), 8, 500)])
    committer = pu.PackCommitter(mirror, planner)
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
    meta = pu.MetadataWriter(store, cache, mirror, jobs=4)
    await meta.trees([[nodes[b"root"]], [nodes[b"mid-1"], nodes[b"mid-2"]], [nodes[b"leaf"]]])
    at = {key: i for i, key in enumerate(order)}
    for mid in (b"mid-1", b"mid-2"):  # each level after the one below it
        tk = layout.tree_key
        assert at[tk(nodes[b"leaf"])] < at[tk(nodes[mid])] < at[tk(nodes[b"root"])]
    assert store.objects[layout.tree_key(nodes[b"leaf"])][0] == b"a tree node: leaf"
    assert mirror.certified >= set(nodes.values())
    work = PushWork(roots={b"r" * 16: lambda: [whole(data)], b"s" * 16: None},
                    node_files=lambda: [(nodes[b"leaf"], [whole(data)])])
    await meta.hints(work)
    (seg,) = mirror.segments
    for root in (b"r" * 16, b"s" * 16, nodes[b"leaf"]):
        assert pk.decode_roots(store.objects[layout.roots_key(root)][0], "") == [seg]
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
    opts = pu.PushOptions(pack_size=100_000, jobs=1)
    with pytest.raises(StorageError, match="connection reset"):
        await pu.upload(RemoteView(store, mirror), cache, work, opts)
    saved = RemoteIndex(mirror.path, mirror.url).load()
    committed = [r for r in recs if saved.has(r.digest)]
    assert committed and len(committed) < len(recs)  # the packs before the failure count
    for r in committed:  # and every chunk the mirror names is on the remote, in its pack
        loc = saved.find(r.digest)
        assert loc is not None and layout.pack_key(loc.pack) in store.objects
    store.fail_at = 0
    res = await pu.upload(RemoteView(store, RemoteIndex(mirror.path, mirror.url).load()), cache, work, opts)
    assert res.chunks == len(recs) - len(committed)
    fresh = RemoteIndex(mirror.path.with_name("fresh"), mirror.url)
    await fresh.refresh(store)
    assert all(fresh.has(r.digest) for r in recs)


# -- remote gc ---------------------------------------------------------------------------------

def test_repack_copies_live_chunks_verified() -> None:
    a, b, c = os.urandom(100), os.urandom(200), os.urandom(300)
    body = pk.PACK_HEADER + a + b + c
    live = [(h(c), 8 + 300, 300), (h(a), 8, 100)]
    data, entries = gcm.repack(body, live, lambda d: f"bad {d.hex()}")
    assert data == pk.PACK_HEADER + a + c
    assert entries == [(h(a), 8, 100), (h(c), 108, 300)]
    with pytest.raises(IntegrityError, match=f"bad {h(c).hex()}"):
        gcm.repack(body[:-1], live, lambda d: f"bad {d.hex()}")


async def test_gc_survey_and_executor_order(mirror: RemoteIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    keep, drop, half = os.urandom(1000), os.urandom(1000), os.urandom(5000)
    p_keep = await put_pack(store, None, [keep])
    p_drop = await put_pack(store, None, [drop])
    p_half = await put_pack(store, None, [half, keep])  # the kept chunk twice: counted once
    await store.put(layout.tree_key(h(b"old node")), b"x")
    await store.put(layout.roots_key(h(b"old root")), b"x")
    await store.put(layout.pack_key(h(b"orphan")), b"orphan")
    survey = await gcm.RemoteSurvey.take(store, jobs=2)
    states = survey.pack_states(lambda o: False)
    assert {s.pack for s in states} == {p_keep, p_drop, p_half}
    assert all(s.young for s in survey.pack_states(lambda o: o.key.startswith("packs/")))

    log: list[tuple[str, str]] = []
    put, delete = store.put, store.delete

    async def rput(key: str, value: bytes | bytearray | memoryview) -> None:
        log.append(("put", key))
        await put(key, value)

    async def rdelete(key: str) -> None:
        log.append(("delete", key))
        await delete(key)

    monkeypatch.setattr(store, "put", rput)
    monkeypatch.setattr(store, "delete", rdelete)
    run = gcm.GcExecutor(store, survey, lambda o: False, jobs=2)
    drop_state = next(s for s in states if s.pack == p_drop)
    half_state = next(s for s in states if s.pack == p_half)
    await run.withdraw(gcm.GcKeep(chunks={h(keep)}))
    await run.packs(GcPlan(drop=[drop_state], rewrite=[(half_state, [(h(keep), 8 + 5000, 1000)])]))
    await run.orphans()
    keys = [k for _, k in log]
    first_pack_op = min(i for i, k in enumerate(keys) if k.startswith(("packs/", "index/")))
    assert keys.index(layout.tree_key(h(b"old node"))) < first_pack_op  # certificates go first
    assert keys.index(layout.roots_key(h(b"old root"))) < first_pack_op
    for state in (drop_state, half_state):  # a segment goes before its pack
        assert keys.index(f"index/{state.segment}") < keys.index(layout.pack_key(state.pack))
    new_pack = next(k for op, k in log if op == "put" and k.startswith("packs/"))
    assert keys.index(new_pack) < keys.index(f"index/{half_state.segment}")  # the copy before the original goes
    assert layout.pack_key(h(b"orphan")) not in store.objects
    assert layout.pack_key(p_keep) in store.objects
    assert (run.res.packs_deleted, run.res.packs_rewritten) == (1, 1)


# -- the mirror's table ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=6, max_size=6), max_size=40),
       st.lists(st.lists(st.binary(min_size=6, max_size=6), max_size=20), max_size=4))
def test_merge_into_equals_sorting_everything_again(old: list[bytes], new: list[list[bytes]]) -> None:
    """Records of 6 bytes keyed by their first 2 (collisions are frequent, within the new records
    and against the table): merging in place keeps what sorting the concatenation keeps (the
    smallest record of each key)."""
    from fastreg._index import merge_into, sort_unique

    table = bytearray(sort_unique(b"".join(old), 6, 2))
    parts = [b"".join(p) for p in new]
    want = sort_unique(bytes(table) + b"".join(parts), 6, 2)
    merge_into(table, parts, 6, 2)
    assert bytes(table) == want


def test_mirror_lookups_while_it_grows(tmp_path: Path) -> None:
    """find() and has() agree with the segments merged so far, across many merges."""
    mirror = RemoteIndex(tmp_path / "m", "memory://")
    seen: dict[bytes, tuple[bytes, int, int]] = {}
    for p in range(30):
        pack = h(f"pack {p}".encode())
        entries = [(h(f"{p}-{i}".encode()), 8 + 100 * i, 100) for i in range(50)]
        entries.append((h(b"in every pack"), 4, 4))
        seg = pk.make_segment(pack, 8 + 100 * 50, entries)
        mirror.merge([(f"seg{p}", seg)])
        for d, off, ln in entries:
            seen.setdefault(d, (pack, off, ln))
        for d, want in list(seen.items())[:: 7]:
            loc = mirror.find(d)
            assert loc is not None and mirror.has(d)
            assert (loc.pack, loc.offset, loc.length) == want  # the first pack for the shared chunk
        assert not mirror.has(h(b"never"))
    assert len(mirror) == len(seen)


def test_mirror_file_round_trip_and_damage(tmp_path: Path) -> None:
    """The mirror is saved as a header and the table's raw bytes; loading reads them back whole,
    and a truncated or foreign file is simply a mirror to rebuild (empty), never an error."""
    mirror = RemoteIndex(tmp_path / "m", "memory://")
    entries = [(h(f"c{i}".encode()), 8 + 10 * i, 10) for i in range(500)]
    mirror.merge([("seg", pk.make_segment(h(b"pack"), 5008, entries))])
    mirror.trees.add(h(b"node"))
    mirror.certified.add(h(b"node"))
    mirror.save()
    again = RemoteIndex(tmp_path / "m", "memory://").load()
    assert bytes(again.table) == bytes(mirror.table) and again.segments == {"seg"}
    assert again.find(entries[7][0]) == mirror.find(entries[7][0]) is not None
    assert again.certified == {h(b"node")}
    data = (tmp_path / "m").read_bytes()
    for broken in (data[:-1], data + b"x", b"\x93garbage", b""):
        (tmp_path / "m").write_bytes(broken)
        assert len(RemoteIndex(tmp_path / "m", "memory://").load()) == 0
    (tmp_path / "m").write_bytes(data)
    assert len(RemoteIndex(tmp_path / "m", "s3://another").load()) == 0  # another remote's mirror


def test_mirror_table_is_read_when_needed_from_the_file_as_loaded(tmp_path: Path) -> None:
    """A command that looks no chunk up never reads the table (it is copied file to file when the
    mirror is saved again), and a mirror saved meanwhile by another command does not change what
    this one reads."""
    path = tmp_path / "m"
    first = RemoteIndex(path, "memory://")
    entries = [(h(f"c{i}".encode()), 8 + 10 * i, 10) for i in range(300)]
    first.merge([("seg", pk.make_segment(h(b"pack"), 3008, entries))])
    first.save()
    lazy = RemoteIndex(path, "memory://").load()
    assert len(lazy) == 300 and lazy._table is None
    lazy.trees.add(h(b"node"))
    lazy.save()  # the table never read: copied from the file
    assert lazy._table is None
    reread = RemoteIndex(path, "memory://").load()
    assert reread.has(entries[5][0]) and reread.trees == {h(b"node")}

    other = RemoteIndex(path, "memory://").load()
    replaced = RemoteIndex(path, "memory://")
    replaced.merge([("other", pk.make_segment(h(b"pack2"), 18, [(h(b"x"), 8, 10)]))])
    replaced.save()  # another command's mirror takes the file's name
    assert other.has(entries[9][0]) and not other.has(h(b"x"))  # read from the file it loaded


async def test_gc_takes_now_from_the_store_not_from_a_clock_that_runs_ahead(mirror: RemoteIndex,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A push is writing (a pack and its segment, no metafile refers to them yet); the gc host's
    clock runs 3 h ahead: with the default grace nothing of the push may go."""
    import time

    real = time.time  # the store's clock; the gc host's is patched below (time.time, everywhere)
    started = real()
    store = MemoryStore(clock=real)
    fresh = await put_pack(store, None, [os.urandom(2000)])
    await store.put(layout.pack_key(h(b"orphan in flight")), b"orphan")  # a pack whose segment is coming
    ahead = started + 3 * 3600
    monkeypatch.setattr(gcm.time, "time", lambda: ahead + (real() - started))
    res = await gcm.gc(store, mirror, gcm.GcKeep(), gcm.GcOptions(grace=3600.0, jobs=2))
    assert layout.pack_key(fresh) in store.objects and layout.pack_key(h(b"orphan in flight")) in store.objects
    assert res.packs_deleted == 0 and res.kept_young == 1
    # The store's own clock moving past the grace is what lets them go.
    store.clock = lambda: real() + 2 * 3600
    res = await gcm.gc(store, mirror, gcm.GcKeep(), gcm.GcOptions(grace=3600.0, jobs=2))
    assert layout.pack_key(fresh) not in store.objects and res.packs_deleted == 1

"""transfer/fetch.py's stages alone, on an in-memory store and a real local cache: planner, writer,
the whole download."""

from __future__ import annotations

import os

import pytest

from fastreg.errors import IntegrityError, MissingDataError
from fastreg.objects import pack as packfmt
from fastreg.objects.tree import FileRecord
from fastreg.plan import RangeRequest
from fastreg.repo.cache import Cache
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import fetch, layout
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer.index import RemoteIndex
from tests.transfer.stages import chunked, h, leftovers, put_file, put_pack, whole


def test_fetch_planner_skips_cached_files_and_duplicates_and_batches(cache: Cache, mirror: RemoteIndex) -> None:
    a, b, c, d = (whole(os.urandom(100)) for _ in range(4))
    put_file(cache, os.urandom(1))  # unrelated
    cached = os.urandom(50)
    put_file(cache, cached)
    planner = fetch.FetchPlanner(MemoryStore(), cache, mirror, fetch.FetchOptions(batch_files=2))
    batches = list(planner.batches([whole(cached), a, a, b, c, d]))
    assert [sorted(x.todo) for x in batches] == [sorted([a.digest, b.digest]), sorted([c.digest, d.digest])]
    assert planner.skipped == 1


async def test_fetch_planner_coalesces_neighbours_and_names_the_file_of_a_missing_chunk(
        cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    x, y = os.urandom(1000), os.urandom(2000)
    pack = await put_pack(store, mirror, [x, y])
    planner = fetch.FetchPlanner(store, cache, mirror, fetch.FetchOptions())
    (batch,) = planner.batches([whole(x), whole(y)])
    assert not planner.lacks_chunks(batch)
    (req,) = planner.plan(batch)  # neighbours in one pack: one ranged GET
    assert (req.pack, req.start, req.end) == (pack, len(packfmt.PACK_HEADER), len(packfmt.PACK_HEADER) + 3000)
    assert batch.pending == 1

    gone = whole(os.urandom(10))
    (batch,) = planner.batches([gone])
    assert planner.lacks_chunks(batch)
    with pytest.raises(MissingDataError, match=gone.digest.hex()):
        planner.plan(batch)


async def planned(store: MemoryStore, cache: Cache, mirror: RemoteIndex,
                  recs: list[FileRecord]) -> tuple[fetch._Batch, list[RangeRequest]]:
    planner = fetch.FetchPlanner(store, cache, mirror, fetch.FetchOptions())
    (batch,) = planner.batches(recs)
    return batch, planner.plan(batch)


async def test_fetch_writer_writes_only_the_good_files_of_a_damaged_response(cache: Cache, mirror: RemoteIndex) -> None:
    store = MemoryStore()
    x, y = os.urandom(1000), os.urandom(1000)
    await put_pack(store, mirror, [x, y])
    batch, (req,) = await planned(store, cache, mirror, [whole(x), whole(y)])
    body = bytearray(await store.get(layout.pack_key(req.pack), req.start, req.end))
    writer = fetch.FetchWriter(store, cache)
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
    writer = fetch.FetchWriter(store, cache)
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
    writer = fetch.FetchWriter(store, cache)
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
    opts = fetch.FetchOptions(jobs=3, batch_files=7, on_arrival=lambda: arrivals.append(1))
    res = await fetch.fetch_files(store, cache, mirror, iter(recs), [], opts)
    assert (res.files, res.bytes) == (41, sum(map(len, small)) + 12000)
    assert all(cache.file_path(r.digest).read_bytes() for r in recs)
    assert cache.file_path(recs[40].digest).read_bytes() == b"".join(parts)
    assert arrivals and leftovers(cache) == []
    again = await fetch.fetch_files(store, cache, mirror, iter(recs), [], opts)
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
    res = await fetch.fetch_files(store, cache, mirror, [chunked(parts)], [], fetch.FetchOptions(jobs=2))
    assert [(d.file, d.why) for d in res.damaged] == [(chunked(parts), "corrupt")] and key in res.damaged[0].where
    assert leftovers(cache) == [] and not cache.has_file(chunked(parts).digest)
    store.objects.pop(key)  # a pack that is gone is damage too, named as missing
    res = await fetch.fetch_files(store, cache, mirror, [chunked(parts)], [], fetch.FetchOptions(jobs=2))
    assert [d.why for d in res.damaged] == ["missing"] and leftovers(cache) == []

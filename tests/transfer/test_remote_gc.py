"""transfer/remote_gc.py alone, on an in-memory store: survey, executor's order, repack, the
store's clock."""

from __future__ import annotations

import os
import time

import pytest

from fastreg.errors import IntegrityError
from fastreg.objects import pack as packfmt
from fastreg.plan import GcPlan
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import layout
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer.index import RemoteIndex
from tests.transfer.stages import h, put_pack


def test_repack_copies_live_chunks_verified() -> None:
    a, b, c = os.urandom(100), os.urandom(200), os.urandom(300)
    body = packfmt.PACK_HEADER + a + b + c
    live = [(h(c), 8 + 300, 300), (h(a), 8, 100)]
    data, entries = remote_gc.repack(body, live, lambda d: f"bad {d.hex()}")
    assert data == packfmt.PACK_HEADER + a + c
    assert entries == [(h(a), 8, 100), (h(c), 108, 300)]
    with pytest.raises(IntegrityError, match=f"bad {h(c).hex()}"):
        remote_gc.repack(body[:-1], live, lambda d: f"bad {d.hex()}")


async def test_gc_survey_and_executor_order(mirror: RemoteIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    keep, drop, half = os.urandom(1000), os.urandom(1000), os.urandom(5000)
    p_keep = await put_pack(store, None, [keep])
    p_drop = await put_pack(store, None, [drop])
    p_half = await put_pack(store, None, [half, keep])  # the kept chunk twice: counted once
    await store.put(layout.tree_key(h(b"old node")), b"x")
    await store.put(layout.roots_key(h(b"old root")), b"x")
    await store.put(layout.pack_key(h(b"orphan")), b"orphan")
    survey = await remote_gc.RemoteSurvey.take(store, jobs=2)
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
    run = remote_gc.GcExecutor(store, survey, lambda o: False, jobs=2)
    drop_state = next(s for s in states if s.pack == p_drop)
    half_state = next(s for s in states if s.pack == p_half)
    await run.withdraw(remote_gc.GcKeep(chunks={h(keep)}))
    await run.packs(GcPlan(drop=[drop_state], rewrite=[(half_state, [(h(keep), 8 + 5000, 1000)])]))
    await run.orphans(time.time())  # a pack without a segment, just written: a push in flight, even at grace 0
    assert layout.pack_key(h(b"orphan")) in store.objects
    await run.orphans(time.time() + remote_gc.ORPHAN_MIN_AGE)  # past that: left by an interrupted push
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




async def test_gc_takes_now_from_the_store_not_from_a_clock_that_runs_ahead(mirror: RemoteIndex,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A push is writing (a pack and its segment, no metafile refers to them yet); the gc host's
    clock runs 3 h ahead: with the default grace nothing of the push may go."""
    real = time.time  # the store's clock; the gc host's is patched below (time.time, everywhere)
    started = real()
    store = MemoryStore(clock=real)
    fresh = await put_pack(store, None, [os.urandom(2000)])
    await store.put(layout.pack_key(h(b"orphan in flight")), b"orphan")  # a pack whose segment is coming
    ahead = started + 3 * 3600
    monkeypatch.setattr(remote_gc.time, "time", lambda: ahead + (real() - started))
    res = await remote_gc.gc(store, mirror, remote_gc.GcKeep(), remote_gc.GcOptions(grace=3600.0, jobs=2))
    assert layout.pack_key(fresh) in store.objects and layout.pack_key(h(b"orphan in flight")) in store.objects
    assert res.packs_deleted == 0 and res.kept_young == 1
    # The store's own clock moving past the grace is what lets them go.
    store.clock = lambda: real() + 2 * 3600
    res = await remote_gc.gc(store, mirror, remote_gc.GcKeep(), remote_gc.GcOptions(grace=3600.0, jobs=2))
    assert layout.pack_key(fresh) not in store.objects and res.packs_deleted == 1

"""Pure planners: dedup and packing for upload, grouping and coalescing for download; examples
and properties (hypothesis)."""

from __future__ import annotations

import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg.chunking import iter_chunks
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location, PackPlan, iter_packs, plan_download


def d(s: str) -> bytes:
    return xxhash.xxh3_128_digest(s.encode())


def chunks(*items: tuple[str, int]) -> bytes:
    return b"".join(d(n) + n_len.to_bytes(4, "big") for n, n_len in items)


def packs_of(files: list[FileRecord], on_remote: set[bytes], pack_size: int) -> list[PackPlan]:
    """All packs, consumed one by one the way push consumes them: a chunk of a pack already
    taken counts as known."""
    taken: set[bytes] = set()
    out = []
    for pack in iter_packs(files, lambda x: x in taken or x in on_remote, pack_size):
        taken.update(c.digest for c in pack.chunks)
        out.append(pack)
    return out


def test_upload_plan_dedups_skips_remote_and_packs() -> None:
    a = FileRecord(100, d("a"), b"")
    b = FileRecord(300, d("b"), chunks(("x", 100), ("y", 200)))
    c = FileRecord(300, d("c"), chunks(("x", 100), ("z", 200)))  # shares chunk x with b
    again = FileRecord(100, d("a"), b"")
    packs = packs_of([a, b, c, again], {d("z")}, pack_size=250)
    planned = [(ref.digest, ref.file, ref.offset, ref.length) for p in packs for ref in p.chunks]
    assert planned == [(d("a"), d("a"), 0, 100), (d("x"), d("b"), 0, 100), (d("y"), d("b"), 100, 200)]
    assert [p.size for p in packs] == [400]  # one pack, closed once it reached pack_size
    assert packs_of([a], {d("a")}, 10) == []


def test_download_plan_groups_by_pack_and_coalesces() -> None:
    locs = {
        d("1"): Location(b"P" * 16, 100, 50),
        d("2"): Location(b"P" * 16, 160, 40),  # 10-byte gap: same request
        d("3"): Location(b"P" * 16, 10_000, 10),  # far: new request
        d("4"): Location(b"Q" * 16, 0, 5),
    }
    needs = {k: [(d("file-" + k.hex()), 0)] for k in locs}
    reqs = plan_download(needs, locs.__getitem__, gap=100, max_request=1 << 20)
    spans = [(r.pack[:1], r.start, r.end, [p.at for p in r.pieces]) for r in reqs]
    assert spans == [(b"P", 100, 200, [0, 60]), (b"P", 10_000, 10_010, [0]), (b"Q", 0, 5, [0])]
    # A request never grows past max_request.
    reqs = plan_download(needs, locs.__getitem__, gap=100, max_request=60)
    assert [(r.start, r.end) for r in reqs if r.pack == b"P" * 16] == [(100, 150), (160, 200), (10_000, 10_010)]


# -- properties ----------------------------------------------------------------------------------
chunk_names = st.integers(min_value=0, max_value=30)
file_chunks = st.lists(st.tuples(chunk_names, st.integers(min_value=1, max_value=500)), min_size=1, max_size=6)


def make_file(parts: list[tuple[int, int]]) -> FileRecord:
    # a chunk's length is a function of its name, as content-addressing implies
    items = [(f"c{n}", 1 + (n * 37) % 500) for n, _ in parts]
    size = sum(length for _, length in items)
    if len(items) == 1:
        return FileRecord(size, d(items[0][0]), b"")
    return FileRecord(size, d("file:" + ",".join(n for n, _ in items)), chunks(*items))


@settings(max_examples=200, deadline=None)
@given(st.lists(file_chunks, max_size=12), st.sets(chunk_names), st.integers(min_value=1, max_value=2000))
def test_upload_plan_never_skips_a_missing_chunk_nor_sends_one_twice(files, remote, pack_size) -> None:
    recs = [make_file(parts) for parts in files]
    on_remote = {d(f"c{n}") for n in remote}
    needed = {digest for r in recs for digest, _ in iter_chunks(r.chunks, r.digest, r.size)}
    packs = packs_of(recs, on_remote, pack_size)
    sent = [c.digest for p in packs for c in p.chunks]
    assert len(sent) == len(set(sent))  # each chunk once
    assert set(sent) == needed - on_remote  # every missing chunk, nothing the remote has
    for p in packs[:-1]:
        assert p.size >= pack_size  # only the last pack may be short
    for p in packs:
        assert p.size == sum(c.length for c in p.chunks) and p.size - p.chunks[-1].length < pack_size
    for p in packs:  # each ref points at the right bytes of its file
        for c in p.chunks:
            rec = next(r for r in recs if r.digest == c.file)
            offsets = {}
            at = 0
            for digest, length in iter_chunks(rec.chunks, rec.digest, rec.size):
                offsets.setdefault(digest, (at, length))
                at += length
            assert offsets[c.digest] == (c.offset, c.length)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5000), st.integers(1, 300)), min_size=1, max_size=40,
                unique_by=lambda t: (t[0], t[1])),
       st.integers(0, 1000), st.integers(1, 4000))
def test_coalescing_never_drops_duplicates_or_exceeds_the_cap(chunks_at, gap, max_request) -> None:
    locs: dict[bytes, Location] = {}
    for i, (pack, offset, length) in enumerate(chunks_at):
        locs[d(f"chunk{i}")] = Location(bytes([pack]) * 16, offset, length)
    needs = {k: [(d(f"file{i}"), i * 10)] for i, k in enumerate(locs)}
    reqs = plan_download(needs, locs.__getitem__, gap=gap, max_request=max_request)
    got = [p.digest for r in reqs for p in r.pieces]
    assert sorted(got) == sorted(locs)  # every needed chunk exactly once
    for r in reqs:
        assert r.end - r.start <= max(max_request, max(p.length for p in r.pieces))  # a lone big chunk may pass
        for p in r.pieces:
            loc = locs[p.digest]
            assert (r.pack, r.start + p.at, p.length) == (loc.pack, loc.offset, loc.length)  # exact bytes
            assert p.targets == tuple(needs[p.digest])


# -- remote gc -------------------------------------------------------------------------------------
def test_gc_plan_drops_rewrites_keeps_and_leaves_young_packs() -> None:
    from fastreg.plan import PackState, plan_gc

    def pack(name: str, chunks: list[str], young: bool = False) -> PackState:
        entries = tuple((d(c), 8 + 100 * i, 100) for i, c in enumerate(chunks))
        return PackState(name, d("pack-" + name), 8 + 100 * len(chunks), entries, young)

    packs = [pack("a", ["1", "2", "3", "4"]), pack("b", ["5", "6"]), pack("c", ["7", "8", "9", "10"]),
             pack("d", ["11"], young=True), pack("e", ["1", "12", "13"])]
    plan = plan_gc(packs, {d(c) for c in ("1", "2", "3", "4", "7", "11", "12")}, 0.5, 8)
    assert [p.segment for p in plan.keep] == ["a"]  # all live
    assert [p.segment for p in plan.drop] == ["b"]  # nothing live
    assert [(p.segment, [e[0] for e in live]) for p, live in plan.rewrite] == [("c", [d("7")]), ("e", [d("12")])]
    assert [p.segment for p in plan.young] == ["d"]  # not judged, whatever it holds
    # Duplicates spread over mostly live packs: each copy past the first is dead; above the
    # unused budget the packs with the most dead bytes are rewritten, the rest kept.
    packs = [pack("a", ["1", "2", "3", "4"]), pack("b", ["1", "5", "6", "7"]), pack("c", ["8", "9", "10", "2"])]
    every = {d(str(i)) for i in range(1, 11)}
    assert [p.segment for p in plan_gc(packs, every, 0.5, 8).keep] == ["a", "b", "c"]  # 75% live: kept
    plan = plan_gc(packs, every, 0.5, 8, max_unused=0.1)  # 200 of 1,200 bytes dead, budget 120
    assert [p.segment for p, _ in plan.rewrite] == ["b"] and [p.segment for p in plan.keep] == ["a", "c"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True), st.booleans()),
                max_size=8),
       st.sets(st.integers(0, 20)), st.floats(0, 1), st.floats(0, 0.5))
def test_gc_plan_never_loses_a_kept_chunk(packs_spec, keep, rewrite_below, max_unused) -> None:
    from fastreg.plan import PackState, plan_gc

    packs = [PackState(f"s{i:02d}", d(f"p{i}"), 8 + 10 * len(cs), tuple((d(f"c{c}"), 8 + 10 * j, 10)
                                                                       for j, c in enumerate(cs)), young)
             for i, (cs, young) in enumerate(packs_spec)]
    keep_chunks = {d(f"c{c}") for c in keep}
    plan = plan_gc(packs, keep_chunks, rewrite_below, 8, max_unused)
    decided = plan.drop + plan.keep + plan.young + [p for p, _ in plan.rewrite]
    assert sorted(p.segment for p in decided) == sorted(p.segment for p in packs)  # each pack decided once
    surviving = {e[0] for p in plan.keep + plan.young for e in p.entries}
    surviving |= {e[0] for _, live in plan.rewrite for e in live}
    on_remote = {e[0] for p in packs for e in p.entries}
    assert keep_chunks & on_remote <= surviving  # a kept chunk is never only in a dropped pack
    for p in plan.drop:
        assert not any(e[0] in keep_chunks and e[0] not in surviving for e in p.entries)
    # dead bytes left in kept packs stay within the budget
    live_in = {p.segment: 0 for p in plan.keep}
    covered: set[bytes] = set()
    for p in sorted(packs, key=lambda x: x.segment):
        for e in p.entries:
            if e[0] in keep_chunks and e[0] not in covered:
                covered.add(e[0])
                if p.segment in live_in:
                    live_in[p.segment] += e[2]
    dead = [p.pack_size - 8 - live_in[p.segment] for p in plan.keep]
    by_budget = [p for p, live in plan.rewrite if sum(e[2] for e in live) >= rewrite_below * max(1, p.pack_size - 8)]
    budget = max_unused * sum(max(1, p.pack_size - 8) for p in plan.keep + by_budget)
    assert max_unused == 0 or sum(dead) <= budget + 1e-6, (dead, budget)

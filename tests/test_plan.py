"""Pure planners: dedup and packing for upload, grouping and coalescing for download."""

from __future__ import annotations

import xxhash

from fastreg.objects.tree import FileRecord
from fastreg.plan import Location, plan_download, plan_upload


def d(s: str) -> bytes:
    return xxhash.xxh3_128_digest(s.encode())


def chunks(*items: tuple[str, int]) -> bytes:
    return b"".join(d(n) + n_len.to_bytes(4, "big") for n, n_len in items)


def test_upload_plan_dedups_skips_remote_and_packs() -> None:
    a = FileRecord(100, d("a"), b"")
    b = FileRecord(300, d("b"), chunks(("x", 100), ("y", 200)))
    c = FileRecord(300, d("c"), chunks(("x", 100), ("z", 200)))  # shares chunk x with b
    again = FileRecord(100, d("a"), b"")
    on_remote = {d("z")}
    packs = plan_upload([a, b, c, again], on_remote.__contains__, pack_size=250)
    planned = [(ref.digest, ref.file, ref.offset, ref.length) for p in packs for ref in p.chunks]
    assert planned == [(d("a"), d("a"), 0, 100), (d("x"), d("b"), 0, 100), (d("y"), d("b"), 100, 200)]
    assert [p.size for p in packs] == [400]  # one pack, closed once it reached pack_size
    assert plan_upload([a], lambda _: True, 10) == []


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

"""Golden bytes of the remote formats: a pack, its index segment, a file record, a root hint and
a project snapshot, built from fixed inputs. A change here is a format change (every remote
written before would be misread, or every digest would move): it must be deliberate, with a new
format version, never a test update."""

from __future__ import annotations

from pathlib import Path

import xxhash

from fastreg.objects import pack
from fastreg.plan import ChunkRef, PackPlan
from fastreg.repo.cache import Cache
from fastreg.transfer import layout
from fastreg.transfer.upload import build_pack, pack_size_of


def h(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def test_golden_pack_and_index_segment(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", ("copy",))
    cache.ensure()
    a, b = b"first file, one chunk", b"second file: " + bytes(range(256)) * 4
    for data in (a, b):
        tmp = cache.tmp_path()
        tmp.write_bytes(data)
        cache.adopt(tmp, xxhash.xxh3_128_digest(data))
    da, db = xxhash.xxh3_128_digest(a), xxhash.xxh3_128_digest(b)
    chunk = b[13:13 + 512]
    plan = PackPlan([ChunkRef(da, da, 0, len(a)), ChunkRef(xxhash.xxh3_128_digest(chunk), db, 13, 512)],
                    len(a) + 512)
    buf = bytearray(pack_size_of(plan))
    digest, segment = build_pack(cache, plan, buf)
    assert bytes(buf) == pack.PACK_HEADER + a + chunk
    assert digest.hex() == h(bytes(buf))
    encoded = segment.encode()
    assert segment.items() == sorted([(da, 8, len(a)), (xxhash.xxh3_128_digest(chunk), 8 + len(a), 512)])
    assert h(encoded) == "e18006d9ec45cc1a2d995208d0db8670"
    assert pack.decode_segment(encoded, h(encoded)) == segment
    assert layout.index_key(h(encoded)) == f"index/{h(encoded)}"
    assert layout.pack_key(digest) == f"packs/{digest.hex()[:2]}/{digest.hex()}"


def test_golden_record_roots_and_snapshot() -> None:
    chunks = xxhash.xxh3_128_digest(b"c1") + (70000).to_bytes(4, "big")
    record = pack.encode_record(70000, chunks)
    assert h(record) == "efda22778add15c04eddf32928bf658c"
    assert pack.decode_record(record, "r") == (70000, chunks)
    roots = pack.encode_roots(["b" * 32, "a" * 32])
    assert h(roots) == "1e28f479938b26e2121529a8c34891a5"
    assert pack.decode_roots(roots, "r") == ["a" * 32, "b" * 32]
    roots_of = (pack.Root("file", xxhash.xxh3_128_digest(b"f"), 3), pack.Root("dir", xxhash.xxh3_128_digest(b"d"), 9))
    snap = pack.Snapshot("0123456789abcdef", 1_795_000_000_000_000_000, "host:/path", roots_of)
    assert h(snap.encode()) == "ba90cc8c4ce7761380999d1103617dd9"
    assert layout.snapshot_key(snap) == f"projects/0123456789abcdef/18e91efd5bd38000-{h(snap.encode())}"
    back = pack.decode_snapshot(snap.encode(), "s")
    assert back.project == snap.project and set(back.roots) == set(snap.roots)
    assert layout.snapshot_key_parts(layout.snapshot_key(snap)) == ("0123456789abcdef", 1_795_000_000_000_000_000)

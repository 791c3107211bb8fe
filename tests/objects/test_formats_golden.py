"""Golden bytes of the remote formats: a pack, its index segment, a file record, a root hint and
a project snapshot, built from fixed inputs (format 2; format 1 as fastreg wrote it before). A
change here is a format change (every remote written before would be misread, or every digest
would move): it must be deliberate, with a new format version, never a test update."""

from __future__ import annotations

import hashlib
from pathlib import Path

import xxhash

from fastreg.objects import pack
from fastreg.objects.digest import digest_of
from fastreg.plan import ChunkRef, PackPlan
from fastreg.repo.cache import Cache
from fastreg.transfer import layout
from fastreg.transfer.upload import build_pack, pack_size_of


def h(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def sha(data: bytes) -> str:
    return digest_of(data, 32).hex()


def test_golden_pack_and_index_segment(tmp_path: Path) -> None:
    """Format 2: SHA-256 names, a version-2 segment (32-byte keys, 40-byte entries)."""
    cache = Cache(tmp_path / "cache", ("copy",))
    cache.ensure()
    a, b = b"first file, one chunk", b"second file: " + bytes(range(256)) * 4
    for data in (a, b):
        tmp = cache.tmp_path()
        tmp.write_bytes(data)
        cache.adopt(tmp, digest_of(data))
    da, db = digest_of(a), digest_of(b)
    chunk = b[13:13 + 512]
    plan = PackPlan([ChunkRef(da, da, 0, len(a)), ChunkRef(digest_of(chunk), db, 13, 512)], len(a) + 512)
    buf = bytearray(pack_size_of(plan))
    digest, segment = build_pack(cache, plan, buf)
    assert bytes(buf) == pack.PACK_HEADER + a + chunk
    assert digest.hex() == sha(bytes(buf)) == hashlib.sha256(b"\x00" + bytes(buf)).hexdigest()
    encoded = segment.encode()
    assert segment.version == 2 and len(segment.entries) == 2 * 40
    assert segment.items() == sorted([(da, 8, len(a)), (digest_of(chunk), 8 + len(a), 512)])
    assert sha(encoded) == "6e48788e5982cd8d6272c806b96df9d1092c63c016f643232de8b8f93a02d603"
    assert pack.decode_segment(encoded, sha(encoded)) == segment
    assert layout.index_key(sha(encoded)) == f"index/{sha(encoded)}"
    assert layout.pack_key(digest) == f"packs/{digest.hex()[:2]}/{digest.hex()}"


def test_format_1_index_segment_reads_as_it_was_written() -> None:
    """A version-1 segment (XXH3-128 names, 24-byte entries), byte for byte what fastreg wrote
    before format 2, still decodes; a format-1 chunk in a version-2 segment is the same chunk."""
    a, chunk = b"first file, one chunk", (b"second file: " + bytes(range(256)) * 4)[13:13 + 512]
    da, dc = xxhash.xxh3_128_digest(a), xxhash.xxh3_128_digest(chunk)
    pack_digest = xxhash.xxh3_128_digest(pack.PACK_HEADER + a + chunk)
    entries = b"".join(pack.ENTRY_1.pack(*e) for e in sorted([(da, 8, len(a)), (dc, 8 + len(a), 512)]))
    encoded = pack.IndexSegment(pack_digest, 8 + len(a) + 512, entries, 1).encode()
    assert h(encoded) == "e18006d9ec45cc1a2d995208d0db8670"  # the golden value of format 1
    seg = pack.decode_segment(encoded, h(encoded))
    assert seg.version == 1 and seg.items() == sorted([(da, 8, len(a)), (dc, 8 + len(a), 512)])
    mixed = pack.make_segment(digest_of(b"p"), 100, [(da, 8, len(a)), (digest_of(chunk), 50, 512)])
    assert sorted(mixed.items()) == sorted([(da, 8, len(a)), (digest_of(chunk), 50, 512)])


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
    assert layout.snapshot_key(snap) == f"projects/0123456789abcdef/18e91efd5bd38000-{sha(snap.encode())}"
    back = pack.decode_snapshot(snap.encode(), "s")
    assert back.project == snap.project and set(back.roots) == set(snap.roots)
    assert layout.snapshot_key_parts(layout.snapshot_key(snap)) == ("0123456789abcdef", 1_795_000_000_000_000_000)

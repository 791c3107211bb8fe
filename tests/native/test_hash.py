"""The native chunker against the pure-Python oracle, plus the properties dedup relies on."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg._hash import Chunker
from fastreg.chunking import default_chunker, gear_table, iter_chunks
from tests.refchunker import cut_points as ref_cut_points

GEAR = gear_table()
SMALL = (64, 256, 1024)  # small sizes so hypothesis inputs span many chunks


def small_chunker() -> Chunker:
    return Chunker(*SMALL, GEAR)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=6000))
def test_native_equals_reference_on_random_bytes(data: bytes) -> None:
    assert small_chunker().cut_points(data) == ref_cut_points(data, *SMALL, GEAR)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=40_000))
def test_native_equals_reference_on_low_entropy(seed: int, size: int) -> None:
    # Few distinct byte values: long runs where the hash behaves differently from random data.
    rnd = random.Random(seed)
    data = bytes(rnd.choice(b"\x00\x01\xff") for _ in range(size))
    assert small_chunker().cut_points(data) == ref_cut_points(data, *SMALL, GEAR)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=20000))
def test_chunks_concatenate_to_input_and_digests_match(data: bytes) -> None:
    ch = small_chunker()
    digest, blob = ch.digest_buffer(data)
    assert digest == xxhash.xxh3_128_digest(data)
    chunks = iter_chunks(blob, digest, len(data))
    pos = 0
    rebuilt = b""
    for chunk_digest, length in chunks:
        piece = data[pos : pos + length]
        assert chunk_digest == xxhash.xxh3_128_digest(piece)
        assert ch.min_size <= length <= ch.max_size or pos + length == len(data)
        rebuilt += piece
        pos += length
    assert rebuilt == data


def test_windowed_digest_equals_one_shot_cuts() -> None:
    # digest_buffer works in windows over large buffers; the cut points must not depend on that.
    ch = default_chunker(16)
    data = random.Random(7).randbytes(9 * 1024 * 1024 + 12345)
    digest, blob = ch.digest_buffer(data)
    cuts = ch.cut_points(data)
    lengths = [length for _, length in iter_chunks(blob, digest, len(data))]
    ends = [sum(lengths[: i + 1]) for i in range(len(lengths))]
    assert ends == cuts
    assert digest == xxhash.xxh3_128_digest(data)


@pytest.mark.parametrize("size", [0, 1, 100, 16 * 1024, 16 * 1024 + 1, 300_000, 1_048_576, 5_000_001])
def test_hash_files_equals_digest_buffer(tmp_path, size: int) -> None:
    ch = default_chunker(16)
    data = random.Random(size).randbytes(size)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    # A buffer smaller than the file exercises the streaming path.
    for bufsize in (1 << 20, 16 << 20):
        [h] = ch.hash_files([str(p)], bufsize=bufsize)
        assert (h.size, h.digest, h.chunks) == (size, *ch.digest_buffer(data))
        st = p.stat()
        assert (h.ino, h.mtime_ns, h.mode) == (st.st_ino, st.st_mtime_ns, st.st_mode)


def test_hash_files_batch_and_missing_file(tmp_path) -> None:
    ch = default_chunker(16)
    paths = []
    for i in range(50):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(os.urandom(i * 997))
        paths.append(str(p))
    results = ch.hash_files(paths)
    assert [r.size for r in results] == [i * 997 for i in range(50)]
    assert all(
        r.digest == xxhash.xxh3_128_digest(Path(p).read_bytes()) for r, p in zip(results, paths, strict=True)
    )
    with pytest.raises(FileNotFoundError) as exc:
        ch.hash_files([paths[0], str(tmp_path / "nope")])
    assert "nope" in str(exc.value)


def test_edit_in_the_middle_changes_only_nearby_chunks() -> None:
    ch = default_chunker(16)
    rnd = random.Random(1234)
    size = 64 * 1024 * 1024
    data = bytearray(rnd.randbytes(size))
    before = set(ch.cut_points(data))
    # 1 MiB overwrite in the middle.
    data[32 << 20 : 33 << 20] = rnd.randbytes(1 << 20)
    after = ch.cut_points(data)
    changed = [c for c in after if c not in before]
    # Chunks within the edited MiB change (about 16 at 64 KiB average) plus one either side.
    assert len(changed) <= 24, len(changed)
    assert all((32 << 20) - (256 << 10) <= c <= (33 << 20) + (256 << 10) for c in changed)
    # An insertion shifts offsets but the chunk *contents* away from the edit are unchanged.
    ins = bytes(data[: 10 << 20]) + b"x" * 1000 + bytes(data[10 << 20 :])
    d1, blob1 = ch.digest_buffer(bytes(data))
    d2, blob2 = ch.digest_buffer(ins)
    c1 = {d for d, _ in iter_chunks(blob1, d1, len(data))}
    c2 = [d for d, _ in iter_chunks(blob2, d2, len(ins))]
    new = [d for d in c2 if d not in c1]
    assert len(new) <= 4, len(new)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        Chunker(1024, 1000, 4096, GEAR)  # avg not a power of two
    with pytest.raises(ValueError):
        Chunker(1024, 512, 4096, GEAR)  # min > avg
    with pytest.raises(ValueError):
        Chunker(64, 256, 1024, b"short")


@pytest.mark.parametrize("sizes", [[0, 5, 70_000], [9_000_000], [100] * 5000, [3_000_000, 10, 5_000_000, 7]])
def test_copy_files_copies_exactly_what_it_hashed(tmp_path, sizes: list[int]) -> None:
    from fastreg._files import copy_files

    ch = default_chunker(16)
    srcs, dsts, datas = [], [], []
    for i, size in enumerate(sizes):
        data = random.Random(i * 31 + size).randbytes(size)
        src = tmp_path / f"s{i}"
        src.write_bytes(data)
        srcs.append(str(src))
        dsts.append(str(tmp_path / f"d{i}"))
        datas.append(data)
    results = copy_files(srcs, dsts, [0o444 if i % 2 else 0o755 for i in range(len(srcs))], bufsize=4 << 20)
    for i, (data, src, dst, got) in enumerate(zip(datas, srcs, dsts, results, strict=True)):
        assert Path(dst).read_bytes() == data
        assert Path(dst).stat().st_mode & 0o777 == (0o444 if i % 2 else 0o755) & ~_umask()
        st = os.stat(src)
        assert got == (len(data), ch.digest_buffer(data)[0], st.st_ino, st.st_mtime_ns, st.st_mode)
    # md5=True: DVC's md5 of each file too, from the same read (libcrypto without the GIL)
    from fastreg._files import native_md5

    assert native_md5()  # CPython's hashlib links OpenSSL: its libcrypto is found
    again = copy_files(srcs, [d + ".md5" for d in dsts], [0o444] * len(srcs), bufsize=4 << 20, md5=True)
    assert [g[:5] for g in again] == [(len(d), ch.digest_buffer(d)[0], *r[2:])
                                      for d, r in zip(datas, results, strict=True)]
    assert [g[5] for g in again] == [hashlib.md5(d).digest() for d in datas]
    # The copy target must be new: an existing file is an error naming it, never overwritten.
    with pytest.raises(FileExistsError) as exc:
        copy_files(srcs[:1], dsts[:1], [0o444])
    assert exc.value.filename == dsts[0]
    with pytest.raises(FileNotFoundError) as exc:  # a missing source is named as such
        copy_files([str(tmp_path / "nowhere")], [str(tmp_path / "new")], [0o444])
    assert exc.value.filename == str(tmp_path / "nowhere") and not (tmp_path / "new").exists()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_stat_files(tmp_path) -> None:
    from fastreg._files import stat_files

    (tmp_path / "a").write_bytes(b"abc")
    got = stat_files([str(tmp_path / "a"), str(tmp_path / "missing")])
    st = (tmp_path / "a").stat()
    assert got == [(st.st_ino, 3, st.st_mtime_ns, st.st_mode), None]


def test_link_files_checks_the_inode_it_hashed(tmp_path) -> None:
    import errno

    from fastreg._files import link_files

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    sa, sb = a.stat(), b.stat()
    keys = [(sa.st_ino, sa.st_size, sa.st_mtime_ns), (sb.st_ino, sb.st_size + 1, sb.st_mtime_ns)]
    errs = link_files([str(a), str(b)], [str(tmp_path / "la"), str(tmp_path / "lb")], keys)
    assert errs == [0, errno.ESTALE]
    assert (tmp_path / "la").stat().st_ino == sa.st_ino and (tmp_path / "la").stat().st_mode & 0o777 == 0o444
    assert not (tmp_path / "lb").exists()  # a file that changed since hashing is not linked
    assert link_files([str(a)], [str(tmp_path / "la")], keys[:1]) == [errno.EEXIST]
    assert link_files([str(a)], [str(tmp_path / "no/dir")], keys[:1]) == [errno.ENOENT]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=2, max_size=2), st.binary(min_size=3, max_size=3)), max_size=300))
def test_sort_unique_is_sort_then_first_per_key(items: list[tuple[bytes, bytes]]) -> None:
    """Keys from a tiny alphabet so duplicates are common; width 5, key 2: the mirror's merge rule
    (sorted records, one location per chunk digest, the smallest record wins)."""
    from fastreg._index import sort_unique

    records = [k + v for k, v in items]
    want, last = [], None
    for r in sorted(records):
        if r[:2] != last:
            want.append(r)
            last = r[:2]
    assert sort_unique(b"".join(records), 5, 2) == b"".join(want)


def test_index_records_widen_entries() -> None:
    import struct

    from fastreg._index import index_records, sort_unique

    # version 2 segments: 32-byte keys, 40-byte entries -> 44-byte records
    entries = b"".join(os.urandom(32) + struct.pack(">II", 100 * i, i + 1) for i in range(50))
    out = index_records(entries, 0x01020304)
    assert out == b"".join(entries[i * 40 : i * 40 + 32] + struct.pack(">III", 0x01020304, 100 * i, i + 1)
                           for i in range(50))
    # version 1: 16-byte XXH3 digests, widened with 16 zero bytes
    old = b"".join(os.urandom(16) + struct.pack(">II", 100 * i, i + 1) for i in range(50))
    assert index_records(old, 7, 16) == b"".join(
        old[i * 24 : i * 24 + 16] + bytes(16) + struct.pack(">III", 7, 100 * i, i + 1) for i in range(50))
    with pytest.raises(ValueError):
        index_records(entries[:-1], 0)
    with pytest.raises(ValueError):
        sort_unique(b"123", 2, 1)


def test_write_files_writes_slices_under_final_names_only(tmp_path) -> None:
    from fastreg._files import write_files

    data = os.urandom(10_000)
    (tmp_path / "exists").write_bytes(b"old")
    tmps = [tmp_path / f"t{i}" for i in range(4)]
    finals = [tmp_path / "a", tmp_path / "exists", tmp_path / "nodir" / "c", tmp_path / "empty"]
    errs = write_files(memoryview(data), [0, 100, 200, 9_999], [100, 100, 300, 0], tmps, finals)
    assert errs[0] == 0 and errs[1] == -1 and errs[2] > 0 and errs[3] == 0
    assert (tmp_path / "a").read_bytes() == data[:100]
    assert (tmp_path / "exists").read_bytes() == b"old"  # an existing object is never replaced
    assert (tmp_path / "empty").read_bytes() == b""
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o444)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "empty", "exists"]  # no temp file left
    with pytest.raises(ValueError):
        write_files(memoryview(data), [9_000], [2_000], [tmp_path / "t"], [tmp_path / "x"])

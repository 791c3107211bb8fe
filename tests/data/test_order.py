"""The epoch order and the sample index as pure functions: no registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreg.data import order
from fastreg.data.sample_index import MULTI, SampleIndex, build
from fastreg.errors import MissingDataError
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.integers(1, 9), st.integers(0, 3))
def test_shards_cover_every_position_once_and_are_even(counts: list[int], shards: int, epoch: int) -> None:
    seen: list[tuple[int, int]] = []
    sizes = []
    for s in range(shards):
        pieces = order.shard_pieces(counts, 7, epoch, s, shards)
        seen += [(p.span, k) for p in pieces for k in range(p.start, p.stop)]
        sizes.append(sum(p.stop - p.start for p in pieces))
    assert sorted(seen) == [(sp, k) for sp, c in enumerate(counts) for k in range(c)]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(0, 50))
def test_the_shuffle_buffer_keeps_every_sample_and_bounds_how_late_it_comes(n: int, buffer: int) -> None:
    reads = list(range(n))
    out = order.shuffled(reads, buffer, 1, 2, 3)
    assert sorted(out) == reads
    assert list(order.shuffled(reads, buffer, 1, 2, 3)) == list(out)
    # what is yielded at position k was read at most `buffer` reads ahead of it
    assert all(x <= k + max(buffer, 1) for k, x in enumerate(out))


def test_worker_taken_follows_the_dataloader_turns() -> None:
    # 3 workers of 5, 5, 4 samples, batches of 2: w0 w1 w2 w0 w1 w2 w0(1) w1(1) ...
    assert order.worker_taken(0, 2, [5, 5, 4]) == ([0, 0, 0], 0)
    assert order.worker_taken(6, 2, [5, 5, 4]) == ([2, 2, 2], 0)
    assert order.worker_taken(8, 2, [5, 5, 4]) == ([4, 2, 2], 1)
    assert order.worker_taken(13, 2, [5, 5, 4]) == ([5, 4, 4], 1)
    assert order.worker_taken(99, 2, [5, 5, 4])[0] == [5, 5, 4]  # the epoch was done
    with pytest.raises(ValueError):
        order.worker_taken(1, 0, [1])


def _records(n: int) -> tuple[list[tuple[str, FileRecord]], dict[bytes, Location]]:
    files, where = [], {}
    pack = os.urandom(16)
    for i in range(n):
        d = i.to_bytes(16, "big")
        files.append((f"class{i % 100:03d}/img.{i:07d}.jpg", FileRecord(30_000, d, b"")))
        where[d] = Location(pack if i < n // 2 else b"\x01" * 16, (i % (n // 2)) * 30_000, 30_000)
    return files, where


def test_the_index_is_compact_and_reads_back(tmp_path: Path) -> None:
    files, where = _records(20_000)
    out = tmp_path / "ix"
    build(out, "url", "c" * 40, "ds", "s3://b/r", list(reversed(files)), where)
    ix = SampleIndex(out)
    assert len(ix) == 20_000 and ix.classes == [f"class{i:03d}" for i in range(100)]
    per_sample = out.stat().st_size / len(ix)
    assert per_sample <= 80, per_sample  # 32-byte digests (format 2) and 21-byte file names: 71 here (55 with format 1)
    paths = [ix.path(i) for i in range(len(ix))]
    assert paths == sorted("ds/" + p for p, _ in files)
    i = paths.index("ds/class042/img.0000142.jpg")
    assert ix.label(i) == 42 and ix.row(i)[0] == (142).to_bytes(16, "big") and ix.row(i)[3] != MULTI
    w = ix.where(i)
    assert w.size == 30_000 and w.chunks[0][2] == where[w.digest].offset
    counts = ix.span_counts()
    assert sum(counts) == 20_000 and max(counts) * 30_000 <= 16 << 20  # a span is one GET of at most 16 MiB
    ix.close()


def test_an_unlocated_chunk_is_named(tmp_path: Path) -> None:
    files, where = _records(10)
    del where[files[3][1].digest]
    with pytest.raises(MissingDataError, match=r"ds/class003/img.0000003.jpg"):
        build(tmp_path / "ix", "url", "c" * 40, "ds", "s3://b/r", files, where)

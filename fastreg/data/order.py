"""The order an epoch reads and yields samples in, computed from the sample index alone (no data),
so that it is the same in every process for the same seed and epoch, and so that a resumed epoch
can skip what was already yielded without reading it.

- Spans (runs of samples laid out together in a pack) are shuffled per (seed, epoch) and
  concatenated: the epoch's read sequence.
- The sequence is cut into world_size x num_workers contiguous shards of equal size (to one
  sample), rank by rank, then worker by worker: every sample once, every rank the same count.
- Each shard's reads pass through a shuffle buffer (seeded per seed, epoch and shard): the order
  it yields. A sample leaves the buffer at most `buffer` reads after it was read, so a reader holds
  at most that many samples besides what is in flight.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Spans(Protocol):
    """What planning needs of a sample index (data/sample_index.py's SampleIndex)."""

    def span_counts(self) -> list[int]: ...
    def span(self, s: int) -> tuple[int, int]: ...
    def ordered(self, pos: int) -> int: ...


def rng(*parts: int) -> random.Random:
    """A generator seeded by these ints (the same on every machine and Python process)."""
    return random.Random(":".join(str(p) for p in parts))


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a span a shard reads: the span, and positions [start, stop) within it."""

    span: int
    start: int
    stop: int


def shard_pieces(counts: Sequence[int], seed: int, epoch: int, shard: int, shards: int) -> list[Piece]:
    """The pieces of spans shard `shard` of `shards` reads in an epoch, in reading order."""
    order = list(range(len(counts)))
    rng(seed, epoch).shuffle(order)
    n = sum(counts)
    lo, hi = n * shard // shards, n * (shard + 1) // shards
    out = []
    at = 0
    for s in order:
        c = counts[s]
        if at + c > lo and at < hi:
            out.append(Piece(s, max(lo - at, 0), min(hi - at, c)))
        at += c
        if at >= hi:
            break
    return out


def epoch_plan(ix: Spans, seed: int, epoch: int, shard: int, shards: int,
               buffer: int) -> tuple[list[Piece], array[int]]:
    """Shard `shard`'s epoch: the span pieces it reads, in order, and the samples in the order it
    yields them (compact arrays: a worker of a 1M-sample dataset holds a few MB of plan)."""
    pieces = shard_pieces(ix.span_counts(), seed, epoch, shard, shards)
    reads: array[int] = array("q")
    for p in pieces:
        first = ix.span(p.span)[0]
        reads.extend(ix.ordered(first + k) for k in range(p.start, p.stop))
    return pieces, shuffled(reads, buffer, seed, epoch, shard)


def shuffled(reads: Sequence[int], buffer: int, seed: int, epoch: int, shard: int) -> array[int]:
    """reads through a shuffle buffer of `buffer` samples: the order they are yielded in."""
    out: array[int] = array("q")
    if buffer <= 1:
        out.extend(reads)
        return out
    r = rng(seed, epoch, shard, 1)
    buf: list[int] = []
    for x in reads:
        if len(buf) < buffer:
            buf.append(x)
            continue
        j = r.randrange(buffer)
        out.append(buf[j])
        buf[j] = x
    r.shuffle(buf)
    out.extend(buf)
    return out


def worker_taken(consumed: int, batch_size: int, sizes: Sequence[int]) -> tuple[list[int], int]:
    """How many samples each worker had yielded when a DataLoader over them had handed out
    `consumed` samples, and whose turn was next: batches are taken from the workers in turn (a
    worker whose samples ran out drops from the turn; its last batch may be short)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    taken = [0] * len(sizes)
    left = consumed
    turn = 0
    while left > 0 and any(t < s for t, s in zip(taken, sizes, strict=True)):
        for w, size in enumerate(sizes):
            if left <= 0:
                break
            n = min(batch_size, size - taken[w], left)
            if n > 0:
                taken[w] += n
                left -= n
                turn = w + 1
    return taken, turn % max(len(sizes), 1)

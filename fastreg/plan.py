"""Pure planners: what to upload (dedup, packing) and which byte ranges to fetch (coalesced).
No I/O: values in, values out, so every case is a unit test."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from fastreg.chunking import iter_chunks
from fastreg.objects.tree import FileRecord


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where a chunk's bytes are in the local cache: file (by digest), offset, length."""

    digest: bytes
    file: bytes
    offset: int
    length: int


@dataclass(slots=True)
class PackPlan:
    chunks: list[ChunkRef] = field(default_factory=list)
    size: int = 0


def iter_packs(files: Iterable[FileRecord], known: Callable[[bytes], bool], pack_size: int) -> Iterator[PackPlan]:
    """Packs of the chunks `known` does not vouch for, lazily, in the order the files come (tree
    order keeps a directory's files together, which makes partial downloads few ranges).

    Only the pack being filled is held here; a caller that consumes packs one by one makes
    `known` true for chunks of packs it already took (pending or committed), which is what
    deduplicates across packs without a set of every chunk of the push."""
    current = PackPlan()
    in_current: set[bytes] = set()
    for rec in files:
        offset = 0
        for digest, length in iter_chunks(rec.chunks, rec.digest, rec.size):
            if digest not in in_current and not known(digest):
                in_current.add(digest)
                current.chunks.append(ChunkRef(digest, rec.digest, offset, length))
                current.size += length
                if current.size >= pack_size:
                    yield current
                    current = PackPlan()
                    in_current = set()
            offset += length
    if current.chunks:
        yield current


@dataclass(frozen=True, slots=True)
class Location:
    pack: bytes
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    """One chunk inside a ranged read: its digest, where it starts in the response body, and
    every (file digest, offset in file) that needs those bytes."""

    digest: bytes
    at: int
    length: int
    targets: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class RangeRequest:
    pack: bytes
    start: int
    end: int  # exclusive
    pieces: tuple[Piece, ...]


#: Bytes between two wanted ranges of one pack that a ranged read reads through rather than
#: splitting the read in two (a GET costs more than 256 KiB of transfer here).
GAP = 256 << 10
#: Largest ranged read by default.
MAX_RANGE = 16 << 20


def joins(pack: bytes | int, start: int, end: int, p: bytes | int, offset: int, length: int,
          gap: int = GAP, max_request: int = MAX_RANGE) -> bool:
    """Whether the range (p, offset, length) joins the read of [start, end) in `pack`: the one
    coalescing rule (ranged reads, and the spans of a training dataset's sample index)."""
    return p == pack and offset - end <= gap and offset + length - start <= max_request


def coalesce(wanted: Iterable[tuple[bytes, Location]], gap: int = GAP, max_request: int = MAX_RANGE,
             targets: Callable[[bytes], tuple[tuple[bytes, int], ...]] = lambda _: ()) -> list[RangeRequest]:
    """Chunks (digest, where it lies) as few ranged reads as `joins` allows, by pack and offset;
    `targets(digest)`: the (file, offset) pairs each chunk's bytes go to (a fetch's), else none."""
    by_pack: dict[bytes, list[tuple[Location, bytes]]] = {}
    for digest, loc in wanted:
        by_pack.setdefault(loc.pack, []).append((loc, digest))
    out: list[RangeRequest] = []
    for pack, items in sorted(by_pack.items()):
        items.sort(key=lambda x: x[0].offset)
        group: list[tuple[Location, bytes]] = []
        start = end = 0
        for loc, digest in items:
            if group and not joins(pack, start, end, loc.pack, loc.offset, loc.length, gap, max_request):
                out.append(_request(pack, start, end, group, targets))
                group = []
            if not group:
                start = end = loc.offset
            group.append((loc, digest))
            end = max(end, loc.offset + loc.length)
        if group:
            out.append(_request(pack, start, end, group, targets))
    return out


def plan_download(needs: dict[bytes, list[tuple[bytes, int]]], where: Callable[[bytes], Location],
                  gap: int = GAP, max_request: int = MAX_RANGE) -> list[RangeRequest]:
    """The needed chunks (digest -> [(file, offset)]) as coalesced ranged reads (see coalesce)."""
    return coalesce(((d, where(d)) for d in needs), gap, max_request, lambda d: tuple(needs[d]))


def _request(pack: bytes, start: int, end: int, group: list[tuple[Location, bytes]],
             targets: Callable[[bytes], tuple[tuple[bytes, int], ...]]) -> RangeRequest:
    pieces = tuple(Piece(d, loc.offset - start, loc.length, targets(d)) for loc, d in group)
    return RangeRequest(pack, start, end, pieces)


# -- remote gc ---------------------------------------------------------------------------------
Entry = tuple[bytes, int, int]  # chunk digest, offset in its pack, length


@dataclass(frozen=True, slots=True)
class PackState:
    """One pack as remote gc sees it: its index segment's entries, and whether the segment or the
    pack is younger than the grace period (a push may still be using it)."""

    segment: str
    pack: bytes
    pack_size: int
    entries: tuple[Entry, ...]
    young: bool


@dataclass(slots=True)
class GcPlan:
    drop: list[PackState] = field(default_factory=list)  # no kept chunk: segment, then pack, go
    rewrite: list[tuple[PackState, list[Entry]]] = field(default_factory=list)  # live chunks into a new pack
    keep: list[PackState] = field(default_factory=list)  # mostly live: left as it is
    young: list[PackState] = field(default_factory=list)  # inside the grace period: not judged


def plan_gc(packs: Iterable[PackState], keep_chunks: set[bytes], rewrite_below: float, header: int,
            max_unused: float = 0.0) -> GcPlan:
    """What remote gc does with each pack. A kept chunk counts once, in the first pack (by segment
    name) that has it, so duplicates left by concurrent pushers are freed; a young pack's chunks
    count too, so a chunk is never kept only in a pack that is dropped. A pack whose live bytes are
    under `rewrite_below` of its chunk bytes is rewritten, one with none is dropped. Then, as
    restic's prune does, the kept packs with the most dead bytes are rewritten too until the dead
    bytes left in kept packs are at most `max_unused` of all the chunk bytes they hold (small
    duplicates spread over mostly live packs would otherwise never go)."""
    plan = GcPlan()
    covered: set[bytes] = set()
    kept_live: list[list[Entry]] = []  # the live entries of each pack in plan.keep
    for p in sorted(packs, key=lambda x: x.segment):
        live = []
        for entry in p.entries:
            if entry[0] in keep_chunks and entry[0] not in covered:
                covered.add(entry[0])
                live.append(entry)
        if p.young:
            plan.young.append(p)
        elif not live:
            plan.drop.append(p)
        elif sum(e[2] for e in live) < rewrite_below * max(1, p.pack_size - header):
            plan.rewrite.append((p, live))
        else:
            plan.keep.append(p)
            kept_live.append(live)
    if max_unused > 0 and plan.keep:
        chunk_bytes = [max(1, p.pack_size - header) for p in plan.keep]
        dead = [n - sum(e[2] for e in live) for n, live in zip(chunk_bytes, kept_live, strict=True)]
        budget = max_unused * sum(chunk_bytes)
        order = sorted(range(len(plan.keep)), key=lambda i: (-dead[i], plan.keep[i].segment))
        left = sum(dead)
        moved = set()
        for i in order:
            if left <= budget or dead[i] <= 0:
                break
            plan.rewrite.append((plan.keep[i], kept_live[i]))
            left -= dead[i]
            moved.add(i)
        plan.keep = [p for i, p in enumerate(plan.keep) if i not in moved]
    return plan

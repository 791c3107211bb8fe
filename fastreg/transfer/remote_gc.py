"""Remote garbage collection.

Given everything the kept metafiles refer to (chunks, tree nodes, file records, root hints):
- a pack none of whose chunks is referenced is deleted (its index segment first, so a reader
  never finds an entry without bytes, then the pack);
- a pack whose live bytes are under half of it is rewritten: the live chunks are copied (and
  verified) into a new pack with its own segment, and only then are the old segment and pack
  deleted;
- tree nodes, file records and root hints no kept metafile refers to are deleted first, before
  any pack (a tree node on the remote certifies its subtree to a push: it must go before the
  chunks under it); packs without a segment (left by an interrupted push) are deleted too;
- root hints of the kept targets are rewritten for the new segment names.

The concurrency rule: nothing younger than `grace` seconds (default one hour) is touched, so a
push that is still uploading (packs first, segments after) never loses objects under it. A pack
without a segment is left alone for ORPHAN_MIN_AGE whatever the grace (even `--grace 0`): it is
a push in flight whose segment is still to come, and deleting it would leave that segment
naming bytes that are gone, which no later push could notice (the index says they are there). A push
that *reuses* a chunk only an unreferenced pack holds, while gc runs, could still lose it:
run remote gc when no push of data that is unreferenced everywhere (deleted from every branch
and tag) is in progress, as with restic's prune.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastreg.errors import DecodeError, IntegrityError, StorageError
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import digest_bytes, matches
from fastreg.plan import Entry, GcPlan, PackState, plan_gc
from fastreg.storage.base import ObjectInfo, Store
from fastreg.transfer import layout
from fastreg.transfer.index import RemoteIndex

REWRITE_BELOW = 0.5
#: Seconds a pack without an index segment is left alone whatever the grace: a push writes each
#: pack's segment right after the pack, so an older one is left by an interrupted push.
ORPHAN_MIN_AGE = 600.0
#: Dead bytes (unreferenced chunks, duplicate copies) that may stay in kept packs, as a share of
#: their chunk bytes: restic's default for prune. Above it the worst packs are rewritten.
MAX_UNUSED = 0.05


@dataclass(slots=True)
class RemoteGcResult:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    objects_deleted: int = 0
    bytes_freed: int = 0
    kept_young: int = 0  # packs younger than the grace period, left alone whatever they hold
    kept_young_bytes: int = 0


@dataclass(frozen=True, slots=True)
class GcKeep:
    """What the kept metafiles refer to: chunks, tree nodes, file records, and the targets whose
    root hints stay (each with its chunks, to name their segments again after packs moved)."""

    chunks: set[bytes] = field(default_factory=set)
    trees: set[bytes] = field(default_factory=set)
    records: set[bytes] = field(default_factory=set)
    roots: dict[bytes, list[bytes]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GcOptions:
    grace: float = 3600.0  # seconds: nothing younger is touched
    jobs: int = 8
    rewrite_below: float = REWRITE_BELOW
    max_unused: float = MAX_UNUSED


@dataclass(slots=True)
class RemoteSurvey:
    """Stage 1: what the remote holds, from one listing per prefix and every index segment."""

    packs: list[ObjectInfo]
    trees: list[ObjectInfo]
    records: list[ObjectInfo]
    roots: list[ObjectInfo]
    segments: dict[str, tuple[ObjectInfo, packfmt.IndexSegment]]  # by segment name

    @classmethod
    async def take(cls, store: Store, jobs: int) -> RemoteSurvey:
        prefixes = (layout.PACKS, layout.INDEX, layout.TREES, layout.RECORDS, layout.ROOTS)
        listings = await asyncio.gather(*(store.list(p) for p in prefixes))
        packs, segments, trees, records, roots = listings
        sem = asyncio.Semaphore(max(1, jobs))

        async def load(o: ObjectInfo) -> tuple[str, tuple[ObjectInfo, packfmt.IndexSegment]]:
            name = o.key[len(layout.INDEX):]
            async with sem:
                data = await store.get(o.key)
            try:
                return name, (o, packfmt.decode_segment(data, name))
            except DecodeError as exc:
                raise IntegrityError(f"{store.where(o.key)}: {exc}; remote gc stopped without deleting "
                                     "anything") from None

        return cls(packs, trees, records, roots, dict(await asyncio.gather(*(load(o) for o in segments))))

    def pack_states(self, young: Callable[[ObjectInfo], bool]) -> list[PackState]:
        """Each segment's pack as plan_gc sees it; young if its segment or its pack is."""
        info = {layout.digest_of_key(o.key): o for o in self.packs}
        out = []
        for name, (o, seg) in self.segments.items():
            pack = info.get(seg.pack)
            out.append(PackState(name, seg.pack, seg.pack_size, tuple(seg.items()),
                                 young(o) or (pack is not None and young(pack))))
        return out


class GcExecutor:
    """Stage 3: carries out the plan, in the order that keeps every reader safe: certificates
    (unreferenced tree nodes, records, hints) first, then packs (segment before pack; a rewrite's
    new pack and segment before the old ones go), then orphan packs of interrupted pushes."""

    def __init__(self, store: Store, survey: RemoteSurvey, young: Callable[[ObjectInfo], bool], jobs: int) -> None:
        self.store, self.survey, self.young = store, survey, young
        self.sem = asyncio.Semaphore(max(1, jobs))
        self.pack_info = {layout.digest_of_key(o.key): o for o in survey.packs}
        self.res = RemoteGcResult()

    async def delete(self, key: str, size: int = 0) -> None:
        async with self.sem:
            await self.store.delete(key)
        self.res.objects_deleted += 1
        self.res.bytes_freed += size

    async def withdraw(self, keep: GcKeep) -> None:
        """Tree nodes no kept metafile reaches (and their root hints and file records) go before
        any pack, so a push never takes a subtree whose chunks are being deleted as one the
        remote holds whole (tree.certified_nodes)."""
        todo = []
        for listing, kept in ((self.survey.trees, keep.trees), (self.survey.records, keep.records),
                              (self.survey.roots, keep.roots)):
            todo += [self.delete(o.key, o.size) for o in listing
                     if layout.digest_of_key(o.key) not in kept and not self.young(o)]
        await asyncio.gather(*todo)

    def count_young(self, plan: GcPlan) -> None:
        for p in plan.young:
            info = self.pack_info.get(p.pack)
            self.res.kept_young += 1
            self.res.kept_young_bytes += info.size if info is not None else p.pack_size

    async def packs(self, plan: GcPlan) -> None:
        await asyncio.gather(*(self.drop(p) for p in plan.drop),
                             *(self.rewrite(p, live) for p, live in plan.rewrite))

    async def drop(self, p: PackState) -> None:
        o, _ = self.survey.segments[p.segment]
        await self.delete(o.key)  # the segment first: then no reader finds entries for the pack
        info = self.pack_info.get(p.pack)
        await self.delete(layout.pack_key(p.pack), info.size if info else p.pack_size)
        self.res.packs_deleted += 1

    async def rewrite(self, p: PackState, live: list[Entry]) -> None:
        key = layout.pack_key(p.pack)
        async with self.sem:
            body = await self.store.get(key)
        data, entries = repack(body, live, lambda d: f"{self.store.where(key)} is corrupt (chunk {d.hex()}); "
                                                    "it was left in place")
        new = digest_bytes(data)
        encoded = packfmt.make_segment(new, len(data), entries).encode()
        async with self.sem:
            await self.store.put(layout.pack_key(new), data)
            await self.store.put(layout.index_key(digest_bytes(encoded).hex()), encoded)
        await self.drop(p)
        self.res.packs_deleted -= 1
        self.res.packs_rewritten += 1
        self.res.bytes_freed -= len(data)

    async def orphans(self, now: float) -> None:
        """Packs without a segment (left by an interrupted push), once past the grace period and
        at least ORPHAN_MIN_AGE old (a younger one is a push in flight)."""
        indexed = {seg.pack for _, seg in self.survey.segments.values()}
        await asyncio.gather(*(self.delete(o.key, o.size) for o in self.survey.packs
                               if layout.digest_of_key(o.key) not in indexed and not self.young(o)
                               and now - o.mtime >= ORPHAN_MIN_AGE))


def repack(body: bytes, live: list[Entry], corrupt: Callable[[bytes], str]) -> tuple[bytes, list[Entry]]:
    """A new pack of the live chunks of `body` (verified, in their old order) and its entries."""
    buf = bytearray(packfmt.PACK_HEADER)
    entries = []
    for digest, offset, length in sorted(live, key=lambda x: x[1]):
        data = body[offset : offset + length]
        if len(data) != length or not matches(data, digest):
            raise IntegrityError(corrupt(digest))
        entries.append((digest, len(buf), length))
        buf += data
    return bytes(buf), entries


async def rehint(store: Store, mirror: RemoteIndex, keep: GcKeep) -> None:
    """Stage 4: the mirror rebuilt from the remote, the kept targets' root hints written again
    for the segments that now hold their chunks."""
    mirror.forget()
    await mirror.refresh(store)  # also records this gc's own mark
    hints = []
    for root, chunks in keep.roots.items():
        names = set()
        for digest in chunks:
            loc = mirror.find(digest)
            if loc is not None:
                names.add(mirror.segment_of(loc.pack))
        hints.append(store.put(layout.roots_key(root), packfmt.encode_roots(sorted(names))))
    await asyncio.gather(*hints)
    mirror.roots.update(keep.roots)
    mirror.trees.update(keep.trees)
    mirror.records.update(keep.records)
    await asyncio.to_thread(mirror.save)


async def store_now(store: Store, marker: str) -> float:
    """"Now" by the store's own clock: the modification time it gave the object `marker` just
    written. Ages are judged against the times the store gave the objects, so a gc host whose
    clock runs ahead (by more than the grace period) must not take its own clock: it would
    delete objects a push is still writing. A marker the listing does not show yet is an error
    (no gc at all is better than one on a guessed time)."""
    for o in await store.list(marker):
        if o.key == marker:
            return o.mtime
    raise StorageError(f"{store.url}: the object {marker} just written is not listed; cannot tell the store's "
                       "time, so nothing was deleted (run the gc again)")


async def gc(store: Store, mirror: RemoteIndex, keep: GcKeep, opts: GcOptions) -> RemoteGcResult:
    """Survey -> plan (plan.plan_gc, pure) -> execute -> rehint."""
    # Announce the gc before deleting anything: every client's mirror notices and rebuilds.
    marker = f"gc/{time.time_ns():x}-{os.urandom(4).hex()}"
    await store.put(marker, b"")
    now = await store_now(store, marker)

    def young(o: ObjectInfo) -> bool:
        return now - o.mtime < opts.grace

    survey = await RemoteSurvey.take(store, opts.jobs)
    plan = plan_gc(survey.pack_states(young), keep.chunks, opts.rewrite_below, len(packfmt.PACK_HEADER),
                   opts.max_unused)
    run = GcExecutor(store, survey, young, opts.jobs)
    await run.withdraw(keep)
    run.count_young(plan)
    await run.packs(plan)
    await run.orphans(now)
    await rehint(store, mirror, keep)
    return run.res

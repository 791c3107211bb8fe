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
push that is still uploading (packs first, segments after) never loses objects under it. A push
that *reuses* a chunk only an unreferenced pack holds, while gc runs, could still lose it:
run remote gc when no push of data that is unreferenced everywhere (deleted from every branch
and tag) is in progress, as with restic's prune.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import xxhash

from fastreg.errors import DecodeError, IntegrityError
from fastreg.objects import pack as pk
from fastreg.objects.digest import digest_bytes
from fastreg.plan import PackState, plan_gc
from fastreg.storage.base import ObjectInfo, Store
from fastreg.transfer.index import RemoteIndex

REWRITE_BELOW = 0.5


@dataclass(slots=True)
class RemoteGcResult:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    objects_deleted: int = 0
    bytes_freed: int = 0
    kept_young: int = 0  # packs younger than the grace period, left alone whatever they hold
    kept_young_bytes: int = 0


async def gc(  # noqa: PLR0915 - decisions in plan.plan_gc; the I/O stages still to split
    store: Store, mirror: RemoteIndex, keep_chunks: set[bytes], keep_trees: set[bytes],
    keep_records: set[bytes], keep_roots: dict[bytes, list[bytes]], grace: float,
    jobs: int) -> RemoteGcResult:
    res = RemoteGcResult()
    # Announce the gc before deleting anything: every client's mirror notices and rebuilds.
    await store.put(f"gc/{time.time_ns():x}-{os.urandom(4).hex()}", b"")
    now = time.time()
    listings = await asyncio.gather(*(store.list(p) for p in ("packs/", "index/", "trees/", "records/", "roots/")))
    packs, segments, trees, records, roots = listings
    pack_info = {pk.digest_of_key(o.key): o for o in packs}
    sem = asyncio.Semaphore(max(1, jobs))

    def young(o: ObjectInfo) -> bool:
        return now - o.mtime < grace

    async def delete(key: str, size: int = 0) -> None:
        async with sem:
            await store.delete(key)
        res.objects_deleted += 1
        res.bytes_freed += size

    async def load_segment(o: ObjectInfo) -> tuple[ObjectInfo, pk.IndexSegment]:
        name = o.key[len("index/"):]
        async with sem:
            data = await store.get(o.key)
        try:
            return o, pk.decode_segment(data, name)
        except DecodeError as exc:
            raise IntegrityError(f"{store.where(o.key)}: {exc}; remote gc stopped without deleting anything") from None

    loaded = await asyncio.gather(*(load_segment(o) for o in segments))
    with_segment = {seg.pack for _, seg in loaded}
    by_name = {o.key[len("index/"):]: (o, seg) for o, seg in loaded}

    def state(o: ObjectInfo, seg: pk.IndexSegment) -> PackState:
        info = pack_info.get(seg.pack)
        return PackState(o.key[len("index/"):], seg.pack, seg.pack_size, tuple(seg.items()),
                         young(o) or (info is not None and young(info)))

    plan = plan_gc([state(o, seg) for o, seg in loaded], keep_chunks, REWRITE_BELOW, len(pk.PACK_HEADER))

    async def drop_pack(o: ObjectInfo, seg: pk.IndexSegment) -> None:
        await delete(o.key)  # the segment first: then no reader finds entries for the pack
        info = pack_info.get(seg.pack)
        await delete(pk.pack_key(seg.pack), info.size if info else seg.pack_size)
        res.packs_deleted += 1

    async def rewrite(o: ObjectInfo, seg: pk.IndexSegment, live: list[tuple[bytes, int, int]]) -> None:
        buf = bytearray(pk.PACK_HEADER)
        entries = []
        async with sem:
            body = await store.get(pk.pack_key(seg.pack))
        for digest, offset, length in sorted(live, key=lambda x: x[1]):
            data = body[offset : offset + length]
            if len(data) != length or xxhash.xxh3_128_digest(data) != digest:
                raise IntegrityError(f"{store.where(pk.pack_key(seg.pack))} is corrupt (chunk {digest.hex()}); "
                                     "it was left in place")
            entries.append((digest, len(buf), length))
            buf += data
        data = bytes(buf)
        new = digest_bytes(data)
        new_seg = pk.make_segment(new, len(data), entries)
        encoded = new_seg.encode()
        async with sem:
            await store.put(pk.pack_key(new), data)
            await store.put(pk.index_key(digest_bytes(encoded).hex()), encoded)
        await drop_pack(o, seg)
        res.packs_deleted -= 1
        res.packs_rewritten += 1
        res.bytes_freed -= len(data)

    # Certificates go first: a tree node no kept metafile reaches (and its root hint and file
    # record) is deleted before any pack, so a push never takes a subtree whose chunks are being
    # deleted as one the remote holds whole (tree.certified_nodes).
    withdraw = []
    for listing, keep in ((trees, keep_trees), (records, keep_records), (roots, set(keep_roots))):
        for o in listing:
            d = pk.digest_of_key(o.key)
            if d not in keep and not young(o):
                withdraw.append(delete(o.key, o.size))
    await asyncio.gather(*withdraw)

    for p in plan.young:
        info = pack_info.get(p.pack)
        res.kept_young += 1
        res.kept_young_bytes += info.size if info is not None else p.pack_size
    await asyncio.gather(*(drop_pack(*by_name[p.segment]) for p in plan.drop),
                         *(rewrite(*by_name[p.segment], live) for p, live in plan.rewrite))

    others = []
    for o in packs:
        if pk.digest_of_key(o.key) not in with_segment and not young(o):
            others.append(delete(o.key, o.size))  # orphan of an interrupted push
    await asyncio.gather(*others)

    # The mirror is rebuilt from the remote, then root hints are rewritten for the new segments.
    mirror.forget()
    await mirror.refresh(store)  # also records this gc's own mark
    hints = []
    for root, chunks in keep_roots.items():
        names = set()
        for digest in chunks:
            loc = mirror.find(digest)
            if loc is not None:
                names.add(mirror.segment_of(loc.pack))
        hints.append(store.put(pk.roots_key(root), pk.encode_roots(sorted(names))))
    await asyncio.gather(*hints)
    mirror.roots.update(keep_roots)
    mirror.trees.update(d for d in keep_trees)
    mirror.records.update(keep_records)
    mirror.save()
    return res



"""Push: plan (what the remote lacks) -> pack -> upload, with bounded memory.

Order on the remote: each pack, then its index segment (the commit point: a reader never sees
an index entry whose bytes are not there), then the tree nodes and file records, then the root
hints. An interrupted push leaves at most orphaned packs (no segment); running it again plans
from the remote's segments and re-uploads what is missing. Concurrent pushers need no lock:
everything is named by content and segments only ever add.

Memory: the packs being uploaded plus one being built, each about pack_size bytes; how many are
uploaded at once follows a budget (PACK_BUDGET bytes), not --jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import xxhash

from fastreg.chunking import iter_chunks
from fastreg.errors import (
    DecodeError,
    IntegrityError,
    InvariantError,
    MissingDataError,
    ObjectNotFound,
    RemoteFormatError,
)
from fastreg.objects import pack as pk
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import FileRecord
from fastreg.plan import PackPlan, iter_packs
from fastreg.progress import Progress, phase
from fastreg.storage.base import Store
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local import LocalObjects

PACK_BUDGET = 64 << 20  # bytes of packs being uploaded at once
MERGE_MIN = 1 << 13  # chunks committed before they are merged into the mirror
FileSource = Callable[[], Iterable[FileRecord]]


@dataclass(frozen=True, slots=True)
class PushResult:
    packs: int
    bytes: int
    chunks: int
    objects: int  # trees, records and root hints uploaded
    requests: int
    files: int = 0  # files with chunks in the packs (one that spans two packs counts twice)


async def ensure_format(store: Store, mirror: RemoteIndex, create: bool) -> None:
    """Check the remote's format marker (once per mirror); create it on first push."""
    if mirror.segments:
        return
    try:
        text = (await store.get(pk.MARKER_KEY)).decode("utf-8", "replace")
    except ObjectNotFound:
        if not create:
            return
        await store.put(pk.MARKER_KEY, f"format = {pk.REMOTE_FORMAT}\n".encode())
        return
    fmt = None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "format":
            fmt = value.strip()
    if fmt != str(pk.REMOTE_FORMAT):
        raise RemoteFormatError(f"{store.url} has remote format {fmt or 'unknown'}; this fastreg reads format "
                           f"{pk.REMOTE_FORMAT}: upgrade fastreg (or use another remote)")


class PackBuffers:
    """Pack buffers passed from one pack to the next: a fresh 16 MiB buffer per pack would be
    zero-filled and page-faulted in page by page (and, freed, unmapped again), a fifth of a
    push's CPU. Their number stays bounded by the push's slots. Each is resized to its pack
    (packs differ by at most a chunk, so that touches few pages), so stores get a plain bytearray."""

    def __init__(self) -> None:
        self._free: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        if not self._free:
            return bytearray(size)
        buf = self._free.pop()
        try:
            if len(buf) > size:
                del buf[size:]
            elif len(buf) < size:
                buf.extend(bytes(size - len(buf)))
        except BufferError:  # a view of it is still held (by a store's library): leave it be
            return bytearray(size)
        return buf

    def give(self, buf: bytearray) -> None:
        self._free.append(buf)


def pack_size_of(plan: PackPlan) -> int:
    return len(pk.PACK_HEADER) + plan.size


def build_pack(cache: LocalObjects, plan: PackPlan, buf: bytearray) -> tuple[bytes, pk.IndexSegment]:
    """Read the planned chunks from the cache (verifying each) into `buf` (pack_size_of(plan)
    bytes), return (pack digest, index segment). Runs in a worker thread."""
    buf[: len(pk.PACK_HEADER)] = pk.PACK_HEADER
    view = memoryview(buf)
    at = len(pk.PACK_HEADER)
    entries: list[tuple[bytes, int, int]] = []
    fd, fd_digest = -1, b""
    try:
        for ref in plan.chunks:
            if ref.file != fd_digest:
                if fd >= 0:
                    os.close(fd)
                path = cache.file_path(ref.file)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fd = -1
                    raise MissingDataError(f"{ref.file.hex()} is not in the local cache ({path}); run "
                                       "`fastreg checkout`/`fastreg add` to restore it, or fetch it") from None
                fd_digest = ref.file
            piece = view[at : at + ref.length]
            n = os.preadv(fd, [piece], ref.offset)
            if n != ref.length or xxhash.xxh3_128_digest(piece) != ref.digest:
                raise IntegrityError(f"cache object {cache.file_path(ref.file)} is corrupt (a chunk does not "
                                     "match its digest); it was not pushed: delete it and re-add the data")
            entries.append((ref.digest, at, ref.length))
            at += ref.length
    finally:
        if fd >= 0:
            os.close(fd)
        view.release()
    digest = digest_bytes(buf)
    return digest, pk.make_segment(digest, len(buf), entries)


async def push(  # noqa: C901, PLR0915 - to be rebuilt as stages
    store: Store, cache: LocalObjects, mirror: RemoteIndex, files: FileSource, trees: list[list[bytes]],
    records: list[FileRecord], roots: dict[bytes, FileSource | None], jobs: int, pack_size: int,
    progress: Progress | None = None,
    node_files: Iterable[tuple[bytes, Iterable[FileRecord]]] | None = None,
    distrust: frozenset[bytes] = frozenset()) -> PushResult:
    """Upload what the remote lacks. `files` and each of `roots` are sources: called, they walk
    the files again (twice here: to estimate, then to pack), so the push holds no list of files.
    A file whose chunks are all on the remote is never read; any other file must be in `cache`.
    `trees`: the tree nodes to write, by depth (tree.levels_pruned), the root level first.
    Chunks in `distrust` are uploaded again whatever the index says (`fastreg check` found
    their pack damaged; see repair_damaged)."""
    if not mirror.refreshed:
        await mirror.refresh(store)
    await ensure_format(store, mirror, create=True)  # checked whenever the mirror knows no segment
    requests = mirror.requests
    phase(progress, "plan")
    # Packs are planned lazily, one at a time: memory holds the packs in flight, not a plan of the
    # whole push. `pending` holds the chunks of packs taken but not committed yet.
    pending: set[bytes] = set()

    def on_remote(digest: bytes) -> bool:
        return mirror.has(digest) and digest not in distrust

    def known(digest: bytes) -> bool:
        return digest in pending or on_remote(digest)

    estimate = sum(r.size for r in files()
                   if not all(on_remote(d) for d, _ in iter_chunks(r.chunks, r.digest, r.size)))
    phase(progress, "upload", estimate)
    # Packs in memory: at most `uploads` being sent plus one being built (a slot is taken before a
    # pack is built and given back once it is on the remote). Their number follows a memory
    # budget, not --jobs: one or two streams already fill the pipe to a nearby S3 with packs of
    # 16 MiB; --jobs still applies to the small objects below.
    uploads = max(1, min(jobs, PACK_BUDGET // max(1, pack_size)))
    slots = asyncio.Semaphore(uploads + 1)
    buffers = PackBuffers()
    queue: asyncio.Queue[tuple[bytes, bytearray, pk.IndexSegment, int] | None] = asyncio.Queue()
    totals = {"packs": 0, "bytes": 0, "chunks": 0, "requests": 0, "files": 0}

    async def produce() -> None:
        try:
            for plan in iter_packs(files(), known, pack_size):
                pending.update(c.digest for c in plan.chunks)
                await slots.acquire()
                data = buffers.take(pack_size_of(plan))
                digest, seg = await asyncio.to_thread(build_pack, cache, plan, data)
                nfiles = len({c.file for c in plan.chunks})
                await queue.put((digest, data, seg, nfiles))
        finally:
            for _ in range(uploads):
                await queue.put(None)

    committed: list[tuple[str, pk.IndexSegment]] = []  # on the remote, not merged into the mirror yet

    def merge_committed() -> None:
        """Merging copies the mirror's table, so it happens when the committed segments add up to
        a quarter of it (and at the end), not once per pack: linear, not quadratic, in the pushes
        of a large dataset. Until then their chunks stay in `pending`."""
        mirror.merge(committed)
        for _, seg in committed:
            pending.difference_update(d for d, _, _ in seg.items())
        committed.clear()

    async def upload() -> None:
        while (item := await queue.get()) is not None:
            digest, data, seg, nfiles = item
            await store.put(pk.pack_key(digest), data)
            size = len(data)
            buffers.give(data)  # the store is done with it: the next pack is built in it
            del item, data
            slots.release()
            encoded = seg.encode()
            name = digest_bytes(encoded).hex()
            await store.put(pk.index_key(name), encoded)
            committed.append((name, seg))
            if sum(len(c.entries) for _, c in committed) // pk.ENTRY.size > max(MERGE_MIN, len(mirror) // 4):
                merge_committed()
            totals["packs"] += 1
            totals["files"] += nfiles
            totals["bytes"] += size
            totals["chunks"] += len(seg.entries) // pk.ENTRY.size
            totals["requests"] += 2
            if progress:
                progress(nfiles, size)

    workers = [asyncio.create_task(upload()) for _ in range(uploads)]
    producer = asyncio.create_task(produce())
    try:
        await asyncio.gather(producer, *workers)
    except BaseException:
        for t in (producer, *workers):
            t.cancel()
        merge_committed()
        mirror.save()  # keep what was committed: the next push resumes from it
        raise
    merge_committed()

    objects = 0
    sem = asyncio.Semaphore(max(1, jobs))

    async def put_object(key: str, data: bytes) -> None:
        nonlocal objects
        async with sem:
            await store.put(key, data)
        objects += 1

    await asyncio.gather(*(put_object(pk.record_key(rec.digest), pk.encode_record(rec.size, rec.chunks))
                           for rec in records if rec.digest not in mirror.records))
    mirror.records.update(r.digest for r in records)
    # Tree nodes after every pack, the deepest first: a node is written only once everything
    # below it is on the remote, which makes it a certificate for its subtree (tree.certified_nodes).
    for level in reversed(trees):
        todo = [d for d in level if d not in mirror.trees]
        datas = [await asyncio.to_thread(cache.get_tree, d) for d in todo]
        await asyncio.gather(*(put_object(pk.tree_key(d), data) for d, data in zip(todo, datas, strict=True)))
        mirror.trees.update(level)
        mirror.certified.update(level)  # written after everything below them
    # Locator hints: which segments hold the chunks of each target, and of each tree node that
    # holds files (so one file is found by reading its node's hint and a segment or two, and a
    # reader that cannot list finds what it needs at all).
    hint_tasks = []
    def hinted() -> Iterator[tuple[bytes, Iterable[FileRecord] | None]]:
        for root, source in roots.items():
            yield root, source() if source is not None else None
        yield from node_files or ()  # walked lazily: no second copy of every record

    done_nodes: list[bytes] = []
    for root, recs in hinted():
        if root in mirror.roots:
            continue
        if root not in roots:
            done_nodes.append(root)
        if recs is None:
            # The target's walk left out subtrees the remote holds whole: name every segment
            # (what a reader that lists the index would read anyway) instead of walking them.
            hint_tasks.append(put_object(pk.roots_key(root), pk.encode_roots(sorted(mirror.segments))))
            continue
        names = set()
        for rec in recs:
            for digest, _ in iter_chunks(rec.chunks, rec.digest, rec.size):
                loc = mirror.find(digest)
                if loc is None:
                    raise InvariantError(f"internal error: chunk {digest.hex()} is not on {store.url} after push")
                names.add(mirror.segment_of(loc.pack))
        hint_tasks.append(put_object(pk.roots_key(root), pk.encode_roots(sorted(names))))
    await asyncio.gather(*hint_tasks)
    mirror.roots.update(roots)
    mirror.roots.update(done_nodes)
    mirror.save()
    return PushResult(totals["packs"], totals["bytes"], totals["chunks"], objects,
                      requests + totals["requests"] + objects, totals["files"])


async def damaged_chunks(store: Store, mirror: RemoteIndex, damaged: dict[bytes, set[bytes] | None]) -> set[bytes]:
    """Every chunk that cannot be read from the damaged packs (all of a pack marked None)."""
    out: set[bytes] = set()
    for pack, bad in damaged.items():
        if bad is not None:
            out |= bad
            continue
        seg = await _segment_of(store, mirror, pack)
        if seg is not None:
            out.update(d for d, _, _ in seg[1].items())
    return out


async def _segment_of(store: Store, mirror: RemoteIndex, pack: bytes) -> tuple[str, pk.IndexSegment] | None:
    if not mirror.knows_pack(pack):
        return None
    name = mirror.segment_of(pack)
    try:
        return name, pk.decode_segment(await store.get(pk.index_key(name)), name)
    except (ObjectNotFound, DecodeError):
        return None


async def repair_damaged(store: Store, mirror: RemoteIndex, damaged: dict[bytes, set[bytes] | None]) -> int:
    """After a push re-uploaded their chunks: withdraw the damaged packs' index entries so no
    reader is sent to them again. A pack none of whose chunks can be read loses its segment (the
    pack becomes an orphan, which remote gc removes); otherwise its segment is replaced by one
    without the bad entries (new segment first, then the old one goes). The mirror is rebuilt
    from the remote afterwards. Returns how many packs were withdrawn in whole or in part."""
    done = 0
    for pack, bad in damaged.items():
        found = await _segment_of(store, mirror, pack)
        if found is None:
            continue
        name, seg = found
        keep = [e for e in seg.items() if bad is not None and e[0] not in bad]
        if keep:
            new = pk.make_segment(pack, max(off + ln for _, off, ln in keep), keep)
            encoded = new.encode()
            await store.put(pk.index_key(digest_bytes(encoded).hex()), encoded)
        await store.delete(pk.index_key(name))
        if not keep:
            with contextlib.suppress(ObjectNotFound):
                await store.delete(pk.pack_key(pack))
        done += 1
    mirror.forget()
    return done

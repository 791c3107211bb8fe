"""Push, in stages: PackPlanner (a thread: the chunks the remote lacks, packed lazily) -> build_pack
(a thread: chunks read and verified into a reused buffer) -> queue -> uploaders (pack, then its
index segment) -> PackCommitter (segments merged into the mirror) -> MetadataWriter (records,
tree nodes deepest first, locator hints).

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
from dataclasses import dataclass, replace

from fastreg.chunking import iter_chunks
from fastreg.errors import (
    IntegrityError,
    InvariantError,
    MissingDataError,
    ObjectNotFound,
)
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import digest_bytes, matches
from fastreg.objects.tree import FileRecord
from fastreg.plan import PackPlan, iter_packs
from fastreg.progress import Progress, phase
from fastreg.storage.base import Store
from fastreg.transfer import layout
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local_objects import LocalObjects
from fastreg.transfer.push_plan import PushTarget, PushWork, Unpushable, plan_push
from fastreg.transfer.remote_check import segment_of
from fastreg.transfer.view import RemoteView

PACK_BUDGET = 48 << 20  # bytes of packs being uploaded at once (three 16 MiB packs)
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
    repaired: int = 0  # damaged packs (found by `fastreg check`) whose chunks the push put back
    failed: tuple[Unpushable, ...] = ()  # targets left out: data they need is neither here nor there


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
    return len(packfmt.PACK_HEADER) + plan.size


def build_pack(cache: LocalObjects, plan: PackPlan, buf: bytearray) -> tuple[bytes, packfmt.IndexSegment]:
    """Read the planned chunks from the cache (verifying each) into `buf` (pack_size_of(plan)
    bytes), return (pack digest, index segment). Runs in a worker thread."""
    buf[: len(packfmt.PACK_HEADER)] = packfmt.PACK_HEADER
    view = memoryview(buf)
    at = len(packfmt.PACK_HEADER)
    entries: list[tuple[bytes, int, int]] = []
    fd, fd_digest = -1, b""
    try:
        for ref in plan.chunks:
            if ref.file != fd_digest:
                if fd >= 0:
                    os.close(fd)
                path = cache.file_path_str(ref.file)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fd = -1
                    raise MissingDataError(f"{ref.file.hex()} is not in the local cache ({path}); run "
                                       "`fastreg checkout`/`fastreg add` to restore it, or fetch it") from None
                fd_digest = ref.file
            piece = view[at : at + ref.length]
            n = os.preadv(fd, [piece], ref.offset)
            if n != ref.length or not matches(piece, ref.digest):
                raise IntegrityError(f"cache object {cache.file_path(ref.file)} is corrupt (a chunk does not "
                                     "match its digest); it was not pushed: delete it and re-add the data")
            entries.append((ref.digest, at, ref.length))
            at += ref.length
    finally:
        if fd >= 0:
            os.close(fd)
        view.release()
    digest = digest_bytes(buf)
    return digest, packfmt.make_segment(digest, len(buf), entries)


@dataclass(frozen=True, slots=True)
class PushOptions:
    """How a push runs: packs of about `pack_size` bytes; `jobs` small objects (tree nodes,
    records, hints) at a time."""

    pack_size: int
    jobs: int = 8
    progress: Progress | None = None


class PackPlanner:
    """Stage 1: which chunks the remote lacks, as packs planned lazily one at a time (memory
    holds the packs in flight, not a plan of the whole push). Walks the file sources: its
    methods run in a thread. `pending`: chunks of packs taken but not committed yet."""

    def __init__(self, view: RemoteView) -> None:
        self.view = view
        self.pending: set[bytes] = set()

    def known(self, digest: bytes) -> bool:
        return digest in self.pending or self.view.has(digest)

    def packs(self, files: Iterable[FileRecord], pack_size: int) -> Iterator[PackPlan]:
        for plan in iter_packs(files, self.known, pack_size):
            self.pending.update(c.digest for c in plan.chunks)
            yield plan

    def committed(self, segments: Iterable[packfmt.IndexSegment]) -> None:
        for seg in segments:
            self.pending.difference_update(d for d, _, _ in seg.items())


class PackCommitter:
    """Stage 4: packs whose segment is on the remote, merged into the mirror. A merge moves the
    mirror's table in place (one linear pass over it, _index.merge_into), so it happens when the
    committed segments add up to a sixteenth of it (and at the end), not once per pack: linear,
    not quadratic, in the pushes of a large dataset. Until then their chunks stay pending in the
    planner (a set: ~90 bytes a chunk, so a small fraction of the table's 28)."""

    def __init__(self, mirror: RemoteIndex, planner: PackPlanner) -> None:
        self.mirror, self.planner = mirror, planner
        self.waiting: list[tuple[str, packfmt.IndexSegment]] = []
        self.packs = self.bytes = self.chunks = self.files = 0

    def commit(self, name: str, seg: packfmt.IndexSegment, files: int) -> None:
        self.waiting.append((name, seg))
        self.packs += 1
        self.files += files
        self.bytes += seg.pack_size
        self.chunks += len(seg)
        if sum(len(s) for _, s in self.waiting) > max(MERGE_MIN, len(self.mirror) // 16):
            self.merge()

    def merge(self) -> None:
        self.mirror.merge(self.waiting)
        self.planner.committed(s for _, s in self.waiting)
        self.waiting.clear()


class _Upload:
    """Planner (a thread) -> builder (a thread: chunks read from the cache and verified into a
    reused buffer) -> queue -> uploaders (pack, then its segment) -> committer. Packs in memory:
    at most `uploads` being sent plus one being built (a slot is taken before a pack is built and
    given back once it is on the remote); their number follows a memory budget (PACK_BUDGET),
    not --jobs: one or two streams already fill the pipe to a nearby S3 with 16 MiB packs."""

    def __init__(self, store: Store, cache: LocalObjects, planner: PackPlanner, committer: PackCommitter,
                 opts: PushOptions) -> None:
        self.store, self.cache, self.planner, self.committer, self.opts = store, cache, planner, committer, opts
        self.uploads = max(1, min(opts.jobs, PACK_BUDGET // max(1, opts.pack_size)))
        self.slots = asyncio.Semaphore(self.uploads + 1)
        self.buffers = PackBuffers()
        self.queue: asyncio.Queue[tuple[bytes, bytearray, packfmt.IndexSegment, int] | None] = asyncio.Queue()

    async def run(self, files: FileSource) -> None:
        workers = [asyncio.create_task(self.upload()) for _ in range(self.uploads)]
        producer = asyncio.create_task(self.produce(files))
        try:
            await asyncio.gather(producer, *workers)
        except BaseException:
            for t in (producer, *workers):
                t.cancel()
            # let a plan being made in a thread finish before the planner's state is read again
            await asyncio.gather(producer, *workers, return_exceptions=True)
            raise
        finally:
            self.committer.merge()  # keep what was committed: the next push resumes from it

    async def produce(self, files: FileSource) -> None:
        try:
            plans = self.planner.packs(files(), self.opts.pack_size)
            while (plan := await asyncio.to_thread(next, plans, None)) is not None:
                await self.slots.acquire()
                data = self.buffers.take(pack_size_of(plan))
                digest, seg = await asyncio.to_thread(build_pack, self.cache, plan, data)
                nfiles = len({c.file for c in plan.chunks})
                await self.queue.put((digest, data, seg, nfiles))
        finally:
            for _ in range(self.uploads):
                self.queue.put_nowait(None)

    async def upload(self) -> None:
        while (item := await self.queue.get()) is not None:
            # A task of its own, so that an interrupt (Ctrl-C cancels this uploader) lets a pack
            # already on its way arrive and be committed: a rerun then does not send it again.
            # Waiting costs at most the packs in flight (`uploads` x pack_size).
            job = asyncio.ensure_future(self.send(item))
            del item
            try:
                await asyncio.shield(job)
            except asyncio.CancelledError:
                while not job.done():  # through every further cancel (gather, then run's clean-up)
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(job)
                if not job.cancelled():
                    job.exception()  # retrieved: the interrupt is what this command reports
                raise

    async def send(self, item: tuple[bytes, bytearray, packfmt.IndexSegment, int]) -> None:
        """One pack, then its segment (the commit point)."""
        digest, data, seg, nfiles = item
        await self.store.put(layout.pack_key(digest), data)
        self.buffers.give(data)  # the store is done with it: the next pack is built in it
        del item, data
        self.slots.release()
        encoded = seg.encode()
        name = digest_bytes(encoded).hex()
        await self.store.put(layout.index_key(name), encoded)  # the commit point
        self.committer.commit(name, seg, nfiles)
        if self.opts.progress:
            self.opts.progress(nfiles, seg.pack_size)


class MetadataWriter:
    """Stage 5, after every pack: file records, then tree nodes the deepest first (a node is
    written only once everything below it is on the remote, which makes it a certificate for its
    subtree: tree.certified_nodes), then locator hints (which segments hold the chunks of each
    target and of each node that holds files, so one file is found by reading its node's hint and
    a segment or two, and a reader that cannot list finds what it needs at all)."""

    def __init__(self, store: Store, cache: LocalObjects, mirror: RemoteIndex, jobs: int) -> None:
        self.store, self.cache, self.mirror = store, cache, mirror
        self.sem = asyncio.Semaphore(max(1, jobs))
        self.objects = 0

    async def put(self, key: str, data: bytes) -> None:
        async with self.sem:
            await self.store.put(key, data)
        self.objects += 1

    async def records(self, records: list[FileRecord]) -> None:
        await asyncio.gather(*(self.put(layout.record_key(rec.digest), packfmt.encode_record(rec.size, rec.chunks))
                               for rec in records if rec.digest not in self.mirror.records))
        self.mirror.records.update(r.digest for r in records)

    async def trees(self, levels: list[list[bytes]]) -> None:
        for level in reversed(levels):
            todo = [d for d in level if d not in self.mirror.trees]
            datas = await asyncio.to_thread(self.read_trees, todo)
            await asyncio.gather(*(self.put(layout.tree_key(d), data) for d, data in zip(todo, datas, strict=True)))
            self.mirror.trees.update(level)
            self.mirror.certified.update(level)  # written after everything below them

    def read_trees(self, digests: list[bytes]) -> list[bytes]:
        return [self.cache.get_tree(d) for d in digests]

    def segments_of(self, recs: Iterable[FileRecord] | None) -> list[str]:
        """The segments holding the chunks of `recs` (every segment for None). In a thread."""
        if recs is None:
            return sorted(self.mirror.segments)
        names = set()
        for rec in recs:
            for digest, _ in iter_chunks(rec.chunks, rec.digest, rec.size):
                loc = self.mirror.find(digest)
                if loc is None:
                    raise InvariantError(f"internal error: chunk {digest.hex()} is not on {self.store.url} after push")
                names.add(self.mirror.segment_of(loc.pack))
        return sorted(names)

    def hints_to_write(self, work: PushWork) -> list[tuple[bytes, list[str]]]:
        """(root or node, segment names) of every hint the remote lacks. Walks the trees once
        (the nodes holding files; a tree's hint is the union of its nodes'): in a thread."""
        out = []
        union: dict[bytes, set[str]] = {root: set() for root in work.whole_trees}
        done: set[bytes] = set()
        for root, node, recs in work.node_files():
            names = self.segments_of(recs)
            if root in union:
                union[root].update(names)
            if node not in self.mirror.roots and node not in done:
                done.add(node)
                out.append((node, names))
        for root, source in work.roots.items():
            if root in self.mirror.roots:
                continue
            if root in union:
                out.append((root, sorted(union[root])))
            else:
                out.append((root, self.segments_of(source() if source is not None else None)))
        return out

    async def hints(self, work: PushWork) -> None:
        todo = await asyncio.to_thread(self.hints_to_write, work)
        await asyncio.gather(*(self.put(layout.roots_key(root), packfmt.encode_roots(names)) for root, names in todo))
        self.mirror.roots.update(root for root, _ in todo)
        self.mirror.roots.update(work.roots)


async def push(view: RemoteView, cache: LocalObjects, targets: list[PushTarget], opts: PushOptions,
               everything: bool) -> PushResult:
    """Upload what the remote lacks of `targets`: packs (planned, built, uploaded, committed),
    then the metadata that refers to them. An interrupted push keeps what it committed in the
    mirror. Packs a check found damaged (everything: every target of the project was selected)
    are repaired on the way: their chunks go again into new packs, their index entries are
    withdrawn, and the hints that named them are written again."""
    await view.current()
    await view.check_format(create=True)
    damaged = view.damage()
    suspect = view.suspect()
    work = await plan_push(view, cache, targets)
    res = await upload(view, cache, work, opts)
    repaired = 0
    if damaged:
        repaired = await repair_damaged(view.store, view.mirror, damaged)
        view.reset_distrust()
    if suspect and everything and not work.failed:  # every target was looked at file by file again
        view.clear_damage()
    if damaged:
        again = await upload(view, cache, work, opts)
        res = replace(res, requests=res.requests + again.requests)
    return replace(res, repaired=repaired, failed=tuple(work.failed))


async def upload(view: RemoteView, cache: LocalObjects, work: PushWork, opts: PushOptions) -> PushResult:
    store, mirror = view.store, view.mirror
    await view.current()
    requests = mirror.requests
    planner = PackPlanner(view)
    committer = PackCommitter(mirror, planner)
    if opts.progress is not None:
        phase(opts.progress, "upload", work.estimate)
    try:
        await _Upload(store, cache, planner, committer, opts).run(work.files)
    except BaseException:
        await asyncio.to_thread(mirror.save)
        raise
    meta = MetadataWriter(store, cache, mirror, opts.jobs)
    await meta.records(work.records)
    await meta.trees(work.trees)
    await meta.hints(work)
    await asyncio.to_thread(mirror.save)
    c = committer
    return PushResult(c.packs, c.bytes, c.chunks, meta.objects, requests + 2 * c.packs + meta.objects, c.files)


async def repair_damaged(store: Store, mirror: RemoteIndex, damaged: dict[bytes, set[bytes] | None]) -> int:
    """After a push re-uploaded their chunks: withdraw the damaged packs' index entries so no
    reader is sent to them again. A pack none of whose chunks can be read loses its segment (the
    pack becomes an orphan, which remote gc removes); otherwise its segment is replaced by one
    without the bad entries (new segment first, then the old one goes). The mirror is rebuilt
    from the remote afterwards. Returns how many packs were withdrawn in whole or in part."""
    done = 0
    for pack, bad in damaged.items():
        found = await segment_of(store, mirror, pack)
        if found is None:
            continue
        name, seg = found
        keep = [e for e in seg.items() if bad is not None and e[0] not in bad]
        if keep:
            new = packfmt.make_segment(pack, max(off + ln for _, off, ln in keep), keep)
            encoded = new.encode()
            await store.put(layout.index_key(digest_bytes(encoded).hex()), encoded)
        await store.delete(layout.index_key(name))
        if not keep:
            with contextlib.suppress(ObjectNotFound):
                await store.delete(layout.pack_key(pack))
        done += 1
    mirror.forget()
    return done

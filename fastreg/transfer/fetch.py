"""Fetch, in stages: FetchPlanner (a thread: which files the cache lacks, a batch at a time, as
coalesced ranged reads) -> bounded queue -> `jobs` workers (GET into a reused buffer) ->
FetchWriter (threads: verify every chunk, write, verify every file, rename into the cache) ->
FetchTally (counts, progress, the check-out waiting alongside).

Nothing lands under a final cache name before its whole-file digest is checked, so a corrupt or
truncated remote object fails the command with an IntegrityError naming the object and a file
that needed it, and leaves nothing that looks complete. Memory: one reused buffer of
MAX_REQUEST (4 MiB) per worker (`jobs` workers), and the plan of about two batches of
BATCH_FILES files."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from fastreg._files import write_files
from fastreg.chunking import file_digest, iter_chunks, list_digest
from fastreg.errors import (
    NO_SPACE,
    FileSystemError,
    IntegrityError,
    MissingDataError,
    ObjectNotFound,
    no_space,
)
from fastreg.objects.digest import SHA256
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location, RangeRequest, plan_download
from fastreg.progress import Progress, phase
from fastreg.storage.base import Store
from fastreg.transfer import layout, ranges
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local_objects import LocalObjects
from fastreg.transfer.ranges import MAX_REQUEST  # each worker's buffer: a pull holds jobs x MAX_REQUEST


@dataclass(frozen=True, slots=True)
class FetchResult:
    files: int
    bytes: int
    requests: int
    skipped: int = 0  # files the cache had already
    # Files that could not be fetched whole: a chunk that does not match its digest, a pack that
    # is truncated or gone, even after the mirror was refreshed from the remote and they were
    # asked for again. Nothing of them was written; every other file was.
    damaged: tuple[Damage, ...] = ()


@dataclass(frozen=True, slots=True)
class Damage:
    file: FileRecord
    where: str  # the pack (its URL) the file needed
    why: str  # "corrupt" (bytes that do not match their digest), "truncated" or "missing"


def damage_error(damaged: tuple[Damage, ...], name: Callable[[bytes], str], fetched: int) -> IntegrityError:
    """The one error for files a download found damaged: each named (`name`: a file digest ->
    its path, or what the caller calls it), with the pack it needed and what was wrong, and the
    truth about the rest (exit 3, as `fastreg check`)."""
    shown = [f"{name(d.file.digest)} ({d.why} in {d.where})" for d in damaged[:10]]
    more = f", and {len(damaged) - 10} more" if len(damaged) > 10 else ""
    return IntegrityError(
        f"{len(damaged)} file{'s are' if len(damaged) != 1 else ' is'} damaged on the remote and "
        f"{'were' if len(damaged) != 1 else 'was'} not written: {', '.join(shown)}{more}; every other file was "
        f"fetched ({fetched} downloaded now). `fastreg check --read-data` on the producer's side finds the "
        "damage and its next `fastreg push` repairs it")


class _Assembly:
    """A file being downloaded: a temp file beside its final name in the cache (cache.tmp_path of
    its digest), chunks written at their offsets."""

    def __init__(self, cache: LocalObjects, rec: FileRecord, nchunks: int) -> None:
        self.rec = rec
        self.remaining = nchunks
        self.tmp = cache.tmp_path(rec.digest)
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.ftruncate(self.fd, rec.size)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


T = TypeVar("T")
BATCH_FILES = 2048  # files planned at a time: memory holds about two batches, not the whole pull


class _Batch:
    """Plan and state of one batch of files: what it needs, the multi-chunk files being
    assembled. Freed once its last request is done."""

    def __init__(self, cache: LocalObjects, todo: dict[bytes, FileRecord]) -> None:
        self.cache = cache
        self.todo = todo
        self.counts: dict[bytes, int] = {}
        self.needs: dict[bytes, list[tuple[bytes, int]]] = {}
        for rec in todo.values():
            offset = 0
            chunks = iter_chunks(rec.chunks, rec.digest, rec.size)
            self.counts[rec.digest] = len(chunks)
            for digest, length in chunks:
                self.needs.setdefault(digest, []).append((rec.digest, offset))
                offset += length
        self.assemblies: dict[bytes, _Assembly] = {}
        self.lock = asyncio.Lock()
        self.pending = 0  # requests not done yet

    def discard(self) -> None:
        for asm in self.assemblies.values():
            asm.discard()
        self.assemblies.clear()


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """How a download runs: `jobs` ranged GETs at a time; `progress` counts down from
    `total_bytes` (when known); `on_arrival` is called after each response's files are in the
    cache (a check-out running alongside waits on it). `batch_files` (0: BATCH_FILES) files are
    planned at a time and `max_request` bytes is the largest GET."""

    jobs: int = 8
    progress: Progress | None = None
    total_bytes: int | None = None
    on_arrival: Callable[[], None] | None = None
    batch_files: int = 0
    max_request: int = 0

    @property
    def workers(self) -> int:
        return max(1, self.jobs)


class FetchPlanner:
    """Stage 1: the files the cache lacks, a batch at a time, each batch as coalesced ranged
    reads. It walks the caller's file source and stats the cache, so it runs in a thread."""

    def __init__(self, store: Store, cache: LocalObjects, mirror: RemoteIndex, opts: FetchOptions) -> None:
        self.store, self.cache, self.mirror = store, cache, mirror
        self.batch_files = opts.batch_files or BATCH_FILES
        self.max_request = opts.max_request or MAX_REQUEST
        self.skipped = 0  # files the cache had already

    def batches(self, files: Iterable[FileRecord]) -> Iterator[_Batch]:
        todo: dict[bytes, FileRecord] = {}
        for rec in files:
            if rec.digest in todo:
                continue
            if self.cache.has_file(rec.digest):
                self.skipped += 1
                continue
            todo[rec.digest] = rec
            if len(todo) >= self.batch_files:
                yield _Batch(self.cache, todo)
                todo = {}
        if todo:
            yield _Batch(self.cache, todo)

    def lacks_chunks(self, batch: _Batch) -> bool:
        """Whether the mirror misses a chunk the batch needs (then it is refreshed first)."""
        return any(not self.mirror.has(d) for d in batch.needs)

    def plan(self, batch: _Batch) -> list[RangeRequest]:
        owner = {d: targets[0][0] for d, targets in batch.needs.items()}

        def where(digest: bytes) -> Location:
            loc = self.mirror.find(digest)
            if loc is None:
                raise MissingDataError(f"{self.store.url} does not have chunk {digest.hex()} of file "
                                       f"{owner[digest].hex()}; was it pushed? Run `fastreg push` where the "
                                       "data was added")
            return loc

        plan = plan_download(batch.needs, where, max_request=self.max_request)
        batch.pending = len(plan)
        return plan


class FetchWriter:
    """Stage 3: a response's bytes into the cache. Every chunk is verified first; files of one
    chunk are written and renamed into the cache in one native pass, chunks of larger files are
    written at their offsets in a temp file, which is renamed in once its whole-file digest
    matches. Every method runs in a worker thread."""

    def __init__(self, store: Store, cache: LocalObjects) -> None:
        self.store, self.cache = store, cache

    def write(self, batch: _Batch, req: RangeRequest, body: memoryview) -> tuple[list[FileRecord], dict[bytes, str]]:
        """Verify the response, write its one-chunk files whose bytes are good; return those files
        and the pieces that are not (chunk digest -> "corrupt" or "truncated")."""
        bad = self.verify(req, body)
        return self.write_whole(batch, req, body, bad), bad

    @staticmethod
    def verify(req: RangeRequest, body: memoryview) -> dict[bytes, str]:
        """The pieces of a response that cannot be used (transfer/ranges.damaged_pieces)."""
        return ranges.damaged_pieces(req, body)

    def write_whole(self, batch: _Batch, req: RangeRequest, body: memoryview,
                    bad: dict[bytes, str] | None = None) -> list[FileRecord]:
        """Files that are one chunk, verified already (`bad`: pieces to leave out): temp name in
        the object's folder, then rename, GIL-free and with no shared state (responses are
        written in parallel)."""
        recs = [batch.todo[file] for piece in req.pieces if not bad or piece.digest not in bad
                for file, _ in piece.targets if batch.counts[file] == 1]
        if not recs:
            return recs
        cache = self.cache
        at = {piece.digest: piece.at for piece in req.pieces}
        errs = write_files(body, [at[r.digest] for r in recs], [r.size for r in recs],
                           [str(cache.tmp_path(r.digest)) for r in recs],
                           [cache.file_path_str(r.digest) for r in recs])
        for rec, err in zip(recs, errs, strict=True):
            if err in NO_SPACE:
                raise no_space(cache.file_path_str(rec.digest), "the cache")
            if err > 0:
                raise FileSystemError(f"cannot write {cache.file_path_str(rec.digest)}: {os.strerror(err)}")
        cache.fetched(r.digest for r in recs)
        return recs

    def assemble(self, batch: _Batch, req: RangeRequest, body: memoryview,
                 bad: dict[bytes, str] | None = None) -> list[_Assembly]:
        """Write the response's good chunks of multi-chunk files; return the files it completed
        (taken out of the batch; a file with a bad chunk never completes, and its temp file goes
        with the batch). Callers hold batch.lock: assemblies are shared between responses."""
        completed = []
        for piece in req.pieces:
            if bad and piece.digest in bad:
                continue
            for file, offset in piece.targets:
                if batch.counts[file] == 1:
                    continue
                asm = batch.assemblies.get(file)
                try:
                    if asm is None:
                        asm = batch.assemblies[file] = _Assembly(self.cache, batch.todo[file], batch.counts[file])
                    asm.write(offset, body[piece.at : piece.at + piece.length])
                except OSError as exc:  # the batch's temp files go with it (FetchTally.discard)
                    if exc.errno in NO_SPACE:
                        raise no_space(self.cache.tmp_path(file).parent, "the cache") from None
                    raise FileSystemError(f"cannot write a download into {self.cache.tmp_path(file).parent}: "
                                          f"{exc.strerror}") from None
                asm.remaining -= 1
                if asm.remaining == 0:
                    completed.append(asm)
        for asm in completed:
            del batch.assemblies[asm.rec.digest]
        return completed

    def finish(self, asm: _Assembly) -> None:
        """Rename a complete multi-chunk file into the cache once its digest matches. Every chunk
        was verified before it was written at its place; in format 2 the file digest is that of
        the chunk list, so checking the list proves the file (no second read of its bytes); a
        format-1 digest is of all the bytes, read back."""
        try:
            asm.close()
            if len(asm.rec.digest) == SHA256:
                ok = list_digest(asm.rec.chunks) == asm.rec.digest and os.stat(asm.tmp).st_size == asm.rec.size
            else:
                ok = file_digest(asm.tmp, len(asm.rec.digest)) == asm.rec.digest
            if not ok:
                raise IntegrityError(f"downloaded file {asm.rec.digest.hex()} does not match its digest")
            self.cache.adopt(asm.tmp, asm.rec.digest)
            self.cache.fetched([asm.rec.digest])
        except OSError as exc:
            asm.discard()
            if exc.errno in NO_SPACE:
                raise no_space(asm.tmp.parent, "the cache") from None
            raise FileSystemError(f"cannot write {asm.tmp}: {exc.strerror}") from None
        except BaseException:
            asm.discard()
            raise


class FetchTally:
    """Stage 4: what has arrived (files, bytes, requests), reported to the progress bar and to a
    check-out waiting alongside; and the batches still in flight (their temp files go on error)."""

    def __init__(self, opts: FetchOptions) -> None:
        self.opts = opts
        self.files = self.bytes = self.requests = 0
        self.live: set[_Batch] = set()

    def arrived(self, recs: Iterable[FileRecord]) -> None:
        for rec in recs:
            self.files += 1
            self.bytes += rec.size
            if self.opts.progress:
                self.opts.progress(1, rec.size)

    def request_done(self, batch: _Batch, any_file: bool) -> None:
        self.requests += 1
        if any_file and self.opts.on_arrival is not None:
            self.opts.on_arrival()
        batch.pending -= 1
        if batch.pending == 0:
            self.live.discard(batch)
            batch.discard()  # files left unassembled had a damaged chunk: their temp files go

    def discard(self) -> None:
        for batch in self.live:
            batch.discard()


class _Download:
    """Planner (a thread) -> bounded queue of ranged requests -> `jobs` workers (GET into a
    reused buffer) -> writer (threads) -> tally. The writes run on a pool of this download's own,
    so that after a failure every thread has finished before unfinished temp files are removed
    (asyncio.to_thread's shared pool cannot be waited for: a write could land after the clean-up)."""

    def __init__(self, store: Store, cache: LocalObjects, mirror: RemoteIndex, roots: list[bytes],
                 opts: FetchOptions) -> None:
        self.store, self.mirror, self.roots, self.opts = store, mirror, roots, opts
        self.planner = FetchPlanner(store, cache, mirror, opts)
        self.writer = FetchWriter(store, cache)
        self.tally = FetchTally(opts)
        self.pool = ThreadPoolExecutor(max(2, opts.jobs), thread_name_prefix="fastreg-fetch")
        self.damage: dict[bytes, Damage] = {}  # file digest -> what was wrong with what it needed
        self.queue: asyncio.Queue[tuple[_Batch, RangeRequest] | None] = asyncio.Queue(maxsize=opts.workers)

    def in_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def run(self, files: Iterable[FileRecord]) -> FetchResult:
        phase(self.opts.progress, "download", self.opts.total_bytes)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.produce(files))
                for _ in range(self.opts.workers):
                    tg.create_task(self.work())
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.tally.discard()
        t = self.tally
        return FetchResult(t.files, t.bytes, self.mirror.requests + t.requests, self.planner.skipped,
                           tuple(self.damage.values()))

    async def produce(self, files: Iterable[FileRecord]) -> None:
        batches = self.planner.batches(files)
        refreshed = False
        while (batch := await self.in_thread(next, batches, None)) is not None:
            if not refreshed and self.planner.lacks_chunks(batch):
                await self.mirror.refresh(self.store, self.roots)
                await self.in_thread(self.mirror.save)
                refreshed = True
            plan = await self.in_thread(self.planner.plan, batch)
            self.tally.live.add(batch)
            for req in plan:
                await self.queue.put((batch, req))
            del plan, batch
        # Only after a normal end: on an error the task group cancels the workers, and a put
        # into a full queue nobody reads would never return.
        for _ in range(self.opts.workers):
            await self.queue.put(None)

    async def work(self) -> None:
        buf = bytearray()
        while (item := await self.queue.get()) is not None:
            batch, req = item
            if len(buf) < req.end - req.start:  # once per worker: requests are at most max_request
                buf = bytearray(max(req.end - req.start, self.planner.max_request))
            await self.run_one(batch, req, buf)

    async def run_one(self, batch: _Batch, req: RangeRequest, buf: bytearray) -> None:
        # one buffer per worker, reused: at most `jobs` bodies in memory, none allocated per request
        key = layout.pack_key(req.pack)
        try:
            body = await self.store.get_into(key, req.start, req.end, buf)
        except ObjectNotFound:
            body = memoryview(b"")
            bad = {piece.digest: "missing" for piece in req.pieces}
            whole: list[FileRecord] = []
        else:
            whole, bad = await self.in_thread(self.writer.write, batch, req, body)
        for digest, why in bad.items():
            for piece in req.pieces:
                if piece.digest == digest:
                    for file, _ in piece.targets:
                        self.damage.setdefault(file, Damage(batch.todo[file], self.store.where(key), why))
        completed: list[_Assembly] = []
        if len(bad) < len(req.pieces) and any(batch.counts[f] != 1 for p in req.pieces for f, _ in p.targets):
            async with batch.lock:
                completed = await self.in_thread(self.writer.assemble, batch, req, body, bad)
        del body
        self.tally.arrived(whole)
        for asm in completed:
            await self.in_thread(self.writer.finish, asm)
            self.tally.arrived([asm.rec])
        self.tally.request_done(batch, bool(whole or completed))


async def fetch_files(store: Store, cache: LocalObjects, mirror: RemoteIndex, files: Iterable[FileRecord],
                      roots: list[bytes], opts: FetchOptions) -> FetchResult:
    """Download the files (by record) that the local cache lacks. `files` may be a generator: it
    is consumed a batch at a time (in a thread: it may walk trees on disk), each batch planned
    (coalesced ranged reads) and fed to the workers while the next one is planned, so memory
    does not grow with the number of files. `roots` name the targets whose locator hints a
    mirror that cannot list reads.

    Damage does not stop the download: every file whose bytes are good is written. The damaged
    ones are asked for once more after the mirror is refreshed from the remote (the local mirror
    is a cache of the remote's index: a producer's push may have repaired the data, withdrawing
    the damaged pack's entries, since it was last read); what is still damaged is reported in
    the result, never written."""
    first = await _Download(store, cache, mirror, roots, opts).run(files)
    if not first.damaged:
        return first
    await mirror.refresh(store, roots)
    await asyncio.to_thread(mirror.save)
    again = await _Download(store, cache, mirror, roots, replace(opts, total_bytes=None)).run(
        [d.file for d in first.damaged])
    return FetchResult(first.files + again.files, first.bytes + again.bytes, first.requests + again.requests,
                       first.skipped, again.damaged)

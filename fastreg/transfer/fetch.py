"""Fetch: plan ranged reads (grouped by pack, coalesced) -> GET with --jobs concurrency ->
verify every chunk and every file -> temp file -> rename into the cache.

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
from dataclasses import dataclass
from typing import Any, TypeVar

import xxhash

from fastreg._files import write_files
from fastreg.chunking import file_digest, iter_chunks
from fastreg.errors import DecodeError, FileSystemError, IntegrityError, MissingDataError, ObjectNotFound
from fastreg.objects import pack as pk
from fastreg.objects import tree as tr
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location, RangeRequest, plan_download
from fastreg.progress import Progress, phase
from fastreg.storage.base import Store
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local import LocalObjects


@dataclass(frozen=True, slots=True)
class FetchResult:
    files: int
    bytes: int
    requests: int
    skipped: int = 0  # files the cache had already


async def fetch_trees(store: Store, cache: LocalObjects, roots: list[bytes]) -> int:
    """Bring every tree node under roots into the local cache (verified); returns how many
    nodes were downloaded. Nodes already cached are trusted and walked locally."""
    fetched = 0
    level = list(dict.fromkeys(roots))
    seen: set[bytes] = set()
    while level:
        async def one(digest: bytes) -> list[bytes]:
            nonlocal fetched
            cached = cache.tree_path(digest).exists()
            data = await fetch_node(store, cache, digest)
            fetched += not cached
            try:
                return tr.child_nodes(data, digest)
            except DecodeError as exc:
                raise IntegrityError(f"{store.where(pk.tree_key(digest))}: {exc}") from None

        seen.update(level)
        children = await asyncio.gather(*(one(d) for d in level))
        level = [c for cs in children for c in cs if c not in seen]
        level = list(dict.fromkeys(level))
    return fetched


async def fetch_node(store: Store, cache: LocalObjects, digest: bytes) -> bytes:
    """One tree node, from the local cache or the remote (verified, then cached)."""
    if cache.tree_path(digest).exists():
        return await asyncio.to_thread(cache.get_tree, digest)
    key = pk.tree_key(digest)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        raise MissingDataError(f"{store.where(key)} is missing: the data was not pushed to {store.url} "
                           "(run `fastreg push` where it was added)") from None
    if digest_bytes(data) != digest:
        raise IntegrityError(f"{store.where(key)} is corrupt (content does not match its digest)")
    await asyncio.to_thread(cache.put_tree, data)
    return data


async def read_chunk(store: Store, mirror: RemoteIndex, digest: bytes, length: int) -> bytes:
    loc = mirror.find(digest)
    if loc is None:
        raise MissingDataError(f"{store.url} does not have chunk {digest.hex()}; was it pushed?")
    key = pk.pack_key(loc.pack)
    data = await store.get(key, loc.offset, loc.offset + loc.length)
    if len(data) != length or xxhash.xxh3_128_digest(data) != digest:
        raise IntegrityError(f"{store.where(key)} is corrupt or truncated at chunk {digest.hex()}")
    return data


async def read_chunks(store: Store, mirror: RemoteIndex, wanted: list[tuple[bytes, int]],
                      jobs: int) -> dict[bytes, bytes]:
    """Several chunks straight from their packs, verified: neighbours in one pack are read with
    one ranged GET (plan_download's coalescing), the requests `jobs` at a time. For streaming
    reads that want more than one chunk (a read-ahead window)."""
    needs: dict[bytes, list[tuple[bytes, int]]] = {}
    for digest, _ in wanted:
        if mirror.find(digest) is None:
            raise MissingDataError(f"{store.url} does not have chunk {digest.hex()}; was it pushed?")
        needs[digest] = []

    def where(digest: bytes) -> Location:
        loc = mirror.find(digest)
        assert loc is not None
        return loc

    out: dict[bytes, bytes] = {}
    sem = asyncio.Semaphore(max(1, jobs))

    async def one(req: RangeRequest) -> None:
        key = pk.pack_key(req.pack)
        async with sem:
            body = await store.get(key, req.start, req.end)
        for piece in req.pieces:
            data = body[piece.at : piece.at + piece.length]
            if len(data) != piece.length or xxhash.xxh3_128_digest(data) != piece.digest:
                raise IntegrityError(f"{store.where(key)} is corrupt or truncated at chunk {piece.digest.hex()}")
            out[piece.digest] = data

    await asyncio.gather(*(one(r) for r in plan_download(needs, where, max_request=MAX_REQUEST)))
    return out


async def fetch_record(store: Store, digest: bytes, size: int) -> FileRecord:
    """The chunk list of a single-file target (files up to the whole-file limit have none)."""
    key = pk.record_key(digest)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        return FileRecord(size, digest, b"")
    try:
        rsize, chunks = pk.decode_record(data, store.where(key))
    except DecodeError as exc:
        raise IntegrityError(str(exc)) from None
    if rsize != size:
        raise IntegrityError(f"{store.where(key)} describes {rsize} bytes, the metafile {size}")
    return FileRecord(size, digest, chunks)


class _Assembly:
    """A file being downloaded: temp file in the cache's tmp/, chunks written at their offsets."""

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
#: Largest ranged GET: each worker keeps a buffer of this size, so a pull holds jobs x MAX_REQUEST
MAX_REQUEST = 4 << 20


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


async def fetch_files(  # noqa: C901, PLR0915 - to be rebuilt as stages
    store: Store, cache: LocalObjects, mirror: RemoteIndex, files: Iterable[FileRecord],
    roots: list[bytes], jobs: int, progress: Progress | None = None,
    total_bytes: int | None = None,
    on_arrival: Callable[[], None] | None = None) -> FetchResult:
    """Download the files (by record) that the local cache lacks. `files` may be a generator: it
    is consumed BATCH_FILES at a time, each batch planned (coalesced ranged reads) and fed to
    `jobs` workers while the next one is planned, so memory does not grow with the number of
    files. `total_bytes` (if known) is what the progress bar counts down from; `on_arrival` is
    called (from a worker thread) after each response's files are in the cache."""
    phase(progress, "download", total_bytes)
    # The file writes run on a pool of this call's own, so that after a failure every thread has
    # finished before the temp files of unfinished files are removed (asyncio.to_thread's shared
    # pool cannot be waited for: a write could land after the clean-up).
    pool = ThreadPoolExecutor(max(2, jobs), thread_name_prefix="fastreg-fetch")
    loop = asyncio.get_running_loop()

    def in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return loop.run_in_executor(pool, fn, *args)

    done = {"files": 0, "bytes": 0, "requests": 0, "skipped": 0}
    refreshed = False
    queue: asyncio.Queue[tuple[_Batch, RangeRequest] | None] = asyncio.Queue(maxsize=max(1, jobs))
    live: set[_Batch] = set()

    def batches() -> Iterator[dict[bytes, FileRecord]]:
        todo: dict[bytes, FileRecord] = {}
        for rec in files:
            if rec.digest in todo:
                continue
            if cache.has_file(rec.digest):
                done["skipped"] += 1
                continue
            todo[rec.digest] = rec
            if len(todo) >= BATCH_FILES:
                yield todo
                todo = {}
        if todo:
            yield todo

    async def produce() -> None:
        nonlocal refreshed
        for todo in batches():
            batch = _Batch(cache, todo)
            if not refreshed and any(not mirror.has(d) for d in batch.needs):
                await mirror.refresh(store, roots)
                mirror.save()
                refreshed = True
            owner = {d: targets[0][0] for d, targets in batch.needs.items()}

            def where(digest: bytes, owner: dict[bytes, bytes] = owner) -> Location:
                loc = mirror.find(digest)
                if loc is None:
                    raise MissingDataError(f"{store.url} does not have chunk {digest.hex()} of file "
                                       f"{owner[digest].hex()}; was it pushed? Run `fastreg push` where the "
                                       "data was added")
                return loc

            plan = plan_download(batch.needs, where, max_request=MAX_REQUEST)
            del owner
            batch.pending = len(plan)
            live.add(batch)
            for req in plan:
                await queue.put((batch, req))
            del plan, batch
        # Only after a normal end: on an error the task group cancels the workers, and a put
        # into a full queue nobody reads would never return.
        for _ in range(max(1, jobs)):
            await queue.put(None)

    def finish(asm: _Assembly) -> None:
        asm.close()
        if file_digest(asm.tmp) != asm.rec.digest:
            raise IntegrityError(f"downloaded file {asm.rec.digest.hex()} does not match its digest")
        cache.adopt(asm.tmp, asm.rec.digest)

    def verify(batch: _Batch, req: RangeRequest, body: memoryview) -> None:
        for piece in req.pieces:
            data = body[piece.at : piece.at + piece.length]
            if len(data) != piece.length or xxhash.xxh3_128_digest(data) != piece.digest:
                first = batch.todo[piece.targets[0][0]]
                raise IntegrityError(
                    f"{store.where(pk.pack_key(req.pack))} is corrupt or truncated: chunk {piece.digest.hex()} "
                    f"(needed by file {first.digest.hex()}) does not match its digest; nothing was written")

    def write_whole(batch: _Batch, req: RangeRequest, body: memoryview) -> list[FileRecord]:
        """Files that are one chunk: verified already, written and renamed straight into the
        cache by the native core in one GIL-free pass (temp name in the object's folder, then
        rename), no shared state (so responses are written in parallel). Runs in a thread."""
        recs = [batch.todo[file] for piece in req.pieces for file, _ in piece.targets if batch.counts[file] == 1]
        if not recs:
            return recs
        at = {piece.digest: piece.at for piece in req.pieces}
        errs = write_files(body, [at[r.digest] for r in recs], [r.size for r in recs],
                                 [str(cache.tmp_path(r.digest)) for r in recs],
                                 [cache.file_path_str(r.digest) for r in recs])
        for rec, err in zip(recs, errs, strict=True):
            if err > 0:
                raise FileSystemError(f"cannot write {cache.file_path_str(rec.digest)}: {os.strerror(err)}")
        return recs

    def verify_and_write(batch: _Batch, req: RangeRequest, body: memoryview) -> list[FileRecord]:
        verify(batch, req, body)
        return write_whole(batch, req, body)

    def apply(batch: _Batch, req: RangeRequest, body: memoryview) -> list[_Assembly]:
        """Write one response's chunks of multi-chunk files; return the files it completed."""
        completed = []
        for piece in req.pieces:
            for file, offset in piece.targets:
                if batch.counts[file] == 1:
                    continue
                asm = batch.assemblies.get(file)
                if asm is None:
                    asm = batch.assemblies[file] = _Assembly(cache, batch.todo[file], batch.counts[file])
                asm.write(offset, body[piece.at : piece.at + piece.length])
                asm.remaining -= 1
                if asm.remaining == 0:
                    completed.append(asm)
        return completed

    async def run_one(batch: _Batch, req: RangeRequest, buf: bytearray) -> None:
        # one buffer per worker, reused: at most `jobs` bodies in memory, none allocated per request
        body = await store.get_into(pk.pack_key(req.pack), req.start, req.end, buf)
        if len(body) != req.end - req.start:
            first = batch.todo[req.pieces[0].targets[0][0]]
            raise IntegrityError(f"{store.where(pk.pack_key(req.pack))} is truncated (needed by file "
                                 f"{first.digest.hex()}); nothing was written")
        whole = await in_thread(verify_and_write, batch, req, body)
        completed: list[_Assembly] = []
        if any(batch.counts[f] != 1 for p in req.pieces for f, _ in p.targets):
            async with batch.lock:  # assemblies of multi-chunk files are shared between requests
                completed = await in_thread(apply, batch, req, body)
                for asm in completed:
                    del batch.assemblies[asm.rec.digest]
        del body
        for rec in whole:
            done["files"] += 1
            done["bytes"] += rec.size
            if progress:
                progress(1, rec.size)
        for asm in completed:
            try:
                await in_thread(finish, asm)
            except BaseException:
                asm.discard()
                raise
            done["files"] += 1
            done["bytes"] += asm.rec.size
            if progress:
                progress(1, asm.rec.size)
        done["requests"] += 1
        if (whole or completed) and on_arrival is not None:
            on_arrival()  # a check-out running alongside may be waiting for these
        batch.pending -= 1
        if batch.pending == 0:
            live.discard(batch)

    async def work() -> None:
        buf = bytearray()
        while (item := await queue.get()) is not None:
            batch, req = item
            if len(buf) < req.end - req.start:  # once per worker: requests are at most MAX_REQUEST
                buf = bytearray(max(req.end - req.start, MAX_REQUEST))
            await run_one(batch, req, buf)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            for _ in range(max(1, jobs)):
                tg.create_task(work())
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        raise first from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for batch in live:
            batch.discard()
    return FetchResult(done["files"], done["bytes"], mirror.requests + done["requests"], done["skipped"])

"""Fetch: plan ranged reads (grouped by pack, coalesced) -> GET with --jobs concurrency ->
verify every chunk and every file -> temp file -> rename into the cache.

Nothing lands under a final cache name before its whole-file digest is checked, so a corrupt or
truncated remote object fails the command with an IntegrityError naming the object and a file
that needed it, and leaves nothing that looks complete. Memory: at most `jobs` responses of at
most 16 MiB each."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import xxhash

from fastreg.chunking import file_digest, iter_chunks
from fastreg.errors import FastregError, IntegrityError
from fastreg.objects import pack as pk
from fastreg.objects import tree as tr
from fastreg.objects.codec import DecodeError
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location, RangeRequest, plan_download
from fastreg.progress import Progress, phase
from fastreg.storage.base import ObjectNotFound, Store
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local import LocalObjects as Cache


@dataclass(frozen=True, slots=True)
class FetchResult:
    files: int
    bytes: int
    requests: int


async def fetch_trees(store: Store, cache: Cache, roots: list[bytes]) -> int:
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


async def fetch_node(store: Store, cache: Cache, digest: bytes) -> bytes:
    """One tree node, from the local cache or the remote (verified, then cached)."""
    if cache.tree_path(digest).exists():
        return await asyncio.to_thread(cache.get_tree, digest)
    key = pk.tree_key(digest)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        raise FastregError(f"{store.where(key)} is missing: the data was not pushed to {store.url} "
                           "(run `fastreg push` where it was added)") from None
    if digest_bytes(data) != digest:
        raise IntegrityError(f"{store.where(key)} is corrupt (content does not match its digest)")
    await asyncio.to_thread(cache.put_tree, data)
    return data


async def read_chunk(store: Store, mirror: RemoteIndex, digest: bytes, length: int) -> bytes:
    loc = mirror.find(digest)
    if loc is None:
        raise FastregError(f"{store.url} does not have chunk {digest.hex()}; was it pushed?")
    key = pk.pack_key(loc.pack)
    data = await store.get(key, loc.offset, loc.offset + loc.length)
    if len(data) != length or xxhash.xxh3_128_digest(data) != digest:
        raise IntegrityError(f"{store.where(key)} is corrupt or truncated at chunk {digest.hex()}")
    return data


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

    def __init__(self, cache: Cache, rec: FileRecord, nchunks: int) -> None:
        self.rec = rec
        self.remaining = nchunks
        self.tmp = cache.tmp_path()
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.ftruncate(self.fd, rec.size)

    def write(self, offset: int, data: bytes) -> None:
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


async def fetch_files(store: Store, cache: Cache, mirror: RemoteIndex, files: list[FileRecord],
                      roots: list[bytes], jobs: int, progress: Progress | None = None) -> FetchResult:
    """Download files (by record) that the local cache lacks."""
    todo = {r.digest: r for r in files if not cache.has_file(r.digest)}
    if not todo:
        return FetchResult(0, 0, mirror.requests)
    needs: dict[bytes, list[tuple[bytes, int]]] = {}
    counts: dict[bytes, int] = {}
    for rec in todo.values():
        offset = 0
        chunks = iter_chunks(rec.chunks, rec.digest, rec.size)
        counts[rec.digest] = len(chunks)
        for digest, length in chunks:
            needs.setdefault(digest, []).append((rec.digest, offset))
            offset += length
    if any(not mirror.has(d) for d in needs):
        await mirror.refresh(store, roots)
        mirror.save()
    owner = {d: targets[0][0] for d, targets in needs.items()}

    def where(digest: bytes) -> Location:
        loc = mirror.find(digest)
        if loc is None:
            rec = todo[owner[digest]]
            raise FastregError(f"{store.url} does not have chunk {digest.hex()} of file {rec.digest.hex()}; "
                               "was it pushed? Run `fastreg push` where the data was added")
        return loc

    plan = plan_download(needs, where)
    phase(progress, "download", sum(r.size for r in todo.values()))
    assemblies: dict[bytes, _Assembly] = {}
    done = {"files": 0, "bytes": 0, "requests": 0}
    sem = asyncio.Semaphore(max(1, jobs))
    lock = asyncio.Lock()

    def finish(asm: _Assembly) -> None:
        asm.close()
        if file_digest(asm.tmp) != asm.rec.digest:
            raise IntegrityError(f"downloaded file {asm.rec.digest.hex()} does not match its digest")
        cache.adopt(asm.tmp, asm.rec.digest)

    def verify(req: RangeRequest, body: bytes) -> None:
        for piece in req.pieces:
            data = body[piece.at : piece.at + piece.length]
            if len(data) != piece.length or xxhash.xxh3_128_digest(data) != piece.digest:
                first = todo[piece.targets[0][0]]
                raise IntegrityError(
                    f"{store.where(pk.pack_key(req.pack))} is corrupt or truncated: chunk {piece.digest.hex()} "
                    f"(needed by file {first.digest.hex()}) does not match its digest; nothing was written")

    def write_whole(req: RangeRequest, body: bytes) -> list[FileRecord]:
        """Files that are one chunk: verified already, written and renamed straight into the
        cache, no shared state (so responses are written in parallel). Runs in a thread."""
        written = []
        for piece in req.pieces:
            for file, _ in piece.targets:
                if counts[file] != 1:
                    continue
                tmp = cache.tmp_path()
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                try:
                    view = memoryview(body)[piece.at : piece.at + piece.length]
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                cache.adopt(tmp, file)
                written.append(todo[file])
        return written

    def apply(req: RangeRequest, body: bytes) -> list[_Assembly]:
        """Write one response's chunks of multi-chunk files; return the files it completed."""
        completed = []
        for piece in req.pieces:
            for file, offset in piece.targets:
                if counts[file] == 1:
                    continue
                asm = assemblies.get(file)
                if asm is None:
                    asm = assemblies[file] = _Assembly(cache, todo[file], counts[file])
                asm.write(offset, body[piece.at : piece.at + piece.length])
                asm.remaining -= 1
                if asm.remaining == 0:
                    completed.append(asm)
        return completed

    async def run_one(req: RangeRequest) -> None:
        async with sem:  # held until the body is written: at most `jobs` bodies in memory
            body = await store.get(pk.pack_key(req.pack), req.start, req.end)
            if len(body) != req.end - req.start:
                first = todo[req.pieces[0].targets[0][0]]
                raise IntegrityError(f"{store.where(pk.pack_key(req.pack))} is truncated (needed by file "
                                     f"{first.digest.hex()}); nothing was written")
            await asyncio.to_thread(verify, req, body)
            whole = await asyncio.to_thread(write_whole, req, body)
            completed: list[_Assembly] = []
            if any(counts[f] != 1 for p in req.pieces for f, _ in p.targets):
                async with lock:  # assemblies of multi-chunk files are shared between requests
                    completed = await asyncio.to_thread(apply, req, body)
                    for asm in completed:
                        del assemblies[asm.rec.digest]
            del body
        for rec in whole:
            done["files"] += 1
            done["bytes"] += rec.size
            if progress:
                progress(1, rec.size)
        for asm in completed:
            try:
                await asyncio.to_thread(finish, asm)
            except BaseException:
                asm.discard()
                raise
            done["files"] += 1
            done["bytes"] += asm.rec.size
            if progress:
                progress(1, asm.rec.size)
        done["requests"] += 1

    try:
        await asyncio.gather(*(run_one(r) for r in plan))
    finally:
        for asm in assemblies.values():
            asm.discard()
    return FetchResult(done["files"], done["bytes"], mirror.requests + done["requests"])

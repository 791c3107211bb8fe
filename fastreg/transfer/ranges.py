"""Reading chunks out of a remote's packs: the one primitive every reader uses. Ranges are planned
with plan.py (neighbours in a pack coalesced), read with ranged GETs, and each chunk is verified
once against its digest; damage is named by pack and chunk. `read_chunks` (a session's: the
registry reader's open files), the pull pipeline (transfer/fetch.py, which writes what verifies
and reports the rest) and fastreg.data (PackReader, below) all go through it.

PackReader is its face for callers that run in plain threads (a training dataset's readers), on
the process's event loop (transfer/bridge.py). Fork safe: a reader made in one process is used and
closed only there (a forked child makes its own)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from fastreg.errors import DamagedChunksError, MissingDataError
from fastreg.objects.digest import matches
from fastreg.plan import Location, RangeRequest, coalesce
from fastreg.storage.base import Store
from fastreg.transfer import bridge
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.layout import pack_key


def verified(data: bytes | memoryview, digest: bytes, length: int) -> bool:
    """A chunk's bytes are whole and are the chunk."""
    return len(data) == length and matches(data, digest)


def damaged_pieces(req: RangeRequest, body: bytes | memoryview) -> dict[bytes, str]:
    """The pieces of a ranged read that cannot be used: all of them when the body is short
    ("truncated"), else those whose bytes do not match their digest ("corrupt")."""
    if len(body) != req.end - req.start:
        return {piece.digest: "truncated" for piece in req.pieces}
    return {piece.digest: "corrupt" for piece in req.pieces
            if not verified(body[piece.at : piece.at + piece.length], piece.digest, piece.length)}


def pieces_of(store: Store, req: RangeRequest, body: bytes) -> dict[bytes, bytes]:
    """Every chunk of a ranged read, verified; the first damaged one raises, named by its pack
    and digest."""
    bad = damaged_pieces(req, body)
    if bad:
        digest, how = next(iter(bad.items()))
        raise DamagedChunksError(f"{store.where(pack_key(req.pack))} is {how} at chunk {digest.hex()}"
                                 + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""), frozenset(bad))
    return {piece.digest: body[piece.at : piece.at + piece.length] for piece in req.pieces}


async def read_ranges(store: Store, requests: list[RangeRequest], jobs: int) -> dict[bytes, bytes]:
    """The chunks of these ranged reads (digest -> bytes), `jobs` GETs at a time, each verified."""
    out: dict[bytes, bytes] = {}
    sem = asyncio.Semaphore(max(1, jobs))

    async def one(req: RangeRequest) -> None:
        async with sem:
            body = await store.get(pack_key(req.pack), req.start, req.end)
        out.update(pieces_of(store, req, body))

    await asyncio.gather(*(one(r) for r in requests))
    return out


async def read_located(store: Store, wanted: Iterable[tuple[bytes, Location]], jobs: int,
                       max_request: int) -> dict[bytes, bytes]:
    """Chunks by where they lie (digest, pack location): planned, read and verified."""
    return await read_ranges(store, coalesce(wanted, max_request=max_request), jobs)


#: Largest ranged GET of a read by chunks and of a pull's workers (each keeps a buffer this big).
MAX_REQUEST = 4 << 20


async def read_chunk(store: Store, mirror: RemoteIndex, digest: bytes, length: int) -> bytes:
    """One chunk from its pack, verified (transfer/ranges.py)."""
    return (await read_chunks(store, mirror, [(digest, length)], 1))[digest]


async def read_chunks(store: Store, mirror: RemoteIndex, wanted: list[tuple[bytes, int]],
                      jobs: int) -> dict[bytes, bytes]:
    """Several chunks straight from their packs, verified: neighbours in one pack are read with
    one ranged GET, the requests `jobs` at a time (transfer/ranges.py). For streaming reads
    that want more than one chunk (a read-ahead window)."""
    located = []
    for digest, _ in wanted:
        loc = mirror.find(digest)
        if loc is None:
            raise MissingDataError(f"{store.url} does not have chunk {digest.hex()}; was it pushed?")
        located.append((digest, loc))
    return await read_located(store, located, jobs, MAX_REQUEST)


class PackReader:
    def __init__(self, store: Store, jobs: int = 16) -> None:
        self.store = store
        self.jobs = jobs
        self.pid = os.getpid()
        self.closed = False

    def _check(self) -> None:
        if self.pid != os.getpid() or self.closed:
            raise RuntimeError("a PackReader is used in the process that made it, until closed")

    def read(self, ranges: list[tuple[bytes, int, int]]) -> list[bytes]:
        """Bytes [start, end) of each (pack digest, start, end), all requested at once (the
        Store limits how many are in flight), not verified: for whole spans whose samples the
        caller verifies (`verified`). Callable from any thread of this process."""
        self._check()

        async def run() -> list[bytes]:
            return list(await asyncio.gather(*(self.store.get(pack_key(p), s, e) for p, s, e in ranges)))

        return bridge.run(run())

    def read_chunks(self, wanted: list[tuple[bytes, Location]], max_request: int) -> dict[bytes, bytes]:
        """Chunks by where they lie, coalesced into ranged reads of at most max_request bytes,
        each verified (digest -> bytes)."""
        self._check()
        return bridge.run(read_located(self.store, wanted, self.jobs, max_request))

    def close(self) -> None:
        if self.pid != os.getpid() or self.closed:
            return  # another process's: its connections are not this one's to touch
        self.closed = True
        try:
            bridge.run(asyncio.wait_for(self.store.close(), 10))
        except Exception:
            pass  # closing is best effort: the connections go with the process

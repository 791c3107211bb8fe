"""`fastreg bench`: measure a storage backend the way fastreg uses it.

Every request goes through the same Store stack as push and pull (the backend, the retry wrapper,
the concurrency limit), so the figures are what fastreg will see. The run has a fixed time budget
(`duration`): after a warm-up (one connection per worker, one object of each size written and
read), the budget left is shared out between the cells, one cell per (operation, object size,
concurrency). A cell runs `jobs` workers that issue requests back to back until its slice ends;
a cell whose first round of requests would take longer than its slice at the best rate seen so
far (for that operation and size) is skipped with a note, and its time goes to the cells after it;
requests still in flight may finish within half a slice more (never past the end of the budget),
and anything still running then is cancelled and left out. The first tenth of each slice is its own
warm-up: requests that finish then are not recorded.

`client_cpu` is this process's CPU time per wall-clock second during the cell: near 1.0 (one core
busy; Python runs the event loop on one) the figures are the client's limit, not the backend's.

Statistics come from every recorded request: throughput is the bytes of the requests that
completed inside the measured window divided by the window; percentiles are taken over all
latencies of the cell (linear interpolation between closest ranks), never averaged across cells.

Operations: put (whole objects of SIZE), get (whole objects of SIZE written by the put cells), range
(RANGE_SIZE bytes at random offsets inside the largest object: what `get` of one file and the
Python API's streaming reads do; its time to first byte is when the response headers arrived),
list (listing every key the run wrote). On a read-only remote nothing is written: get reads SIZE
bytes at random offsets of existing packs, range reads from the largest pack, list lists the
remote's index segments.

All objects go under a unique prefix (fastreg-bench-<time>-<random>/) and are deleted at the end,
unless `keep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastreg.errors import ObjectNotFound, StorageError
from fastreg.objects import pack
from fastreg.storage.base import Store
from fastreg.transfer import layout

RANGE_SIZE = 64 << 10  # fastreg's average chunk
WARMUP_SHARE = 0.1
TAIL_SHARE = 0.5  # in-flight requests may finish within this share of a slice after it ends
FIT_SHARE = 1.0  # a cell runs only if one round of its requests is expected to fit in its slice
PREFLIGHT_TIMEOUT = 10.0


def percentile(ordered: list[float], p: float) -> float:
    """The p-th percentile (0..100) of sorted values, interpolating linearly between ranks."""
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 50) * 1000, 3), "p95": round(percentile(ordered, 95) * 1000, 3),
            "p99": round(percentile(ordered, 99) * 1000, 3), "max": round(ordered[-1] * 1000, 3)}


@dataclass(slots=True)
class Cell:
    op: str  # put | get | range | list
    size: int  # bytes per request (list: 0)
    jobs: int
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    keys: int = 0  # list: keys returned
    errors: int = 0
    retries: int = 0
    cut_off: int = 0  # requests cancelled at the end of the budget
    cpu: float = 0.0  # this process's CPU seconds per wall second during the cell (1.0 = one core busy)
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def mib_per_s(self) -> float | None:
        return self.bytes / self.seconds / (1 << 20) if self.seconds > 0 and self.op != "list" else None

    @property
    def requests_per_s(self) -> float | None:
        return self.requests / self.seconds if self.seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        mib, rps = self.mib_per_s, self.requests_per_s
        out: dict[str, Any] = {
            "op": self.op, "size": self.size, "jobs": self.jobs, "requests": self.requests, "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "mib_per_s": None if mib is None else round(mib, 2),
            "requests_per_s": None if rps is None else round(rps, 2),
            "latency_ms": summary_ms(self.latencies),
            "ttfb_ms": summary_ms(self.ttfbs),
            "errors": self.errors, "retries": self.retries, "cut_off": self.cut_off,
            "client_cpu": round(self.cpu, 3),
        }
        if self.op == "list":
            out["keys"] = self.keys
            out["keys_per_s"] = round(self.keys / self.seconds, 1) if self.seconds > 0 else None
        if self.note:
            out["note"] = self.note
        return out


@dataclass(slots=True)
class Plan:
    sizes: list[int]
    jobs: list[int]
    duration: float
    read_only: bool


class Runner:
    """Runs the cells of a Plan against `store` (already rooted at the bench prefix when writing).
    `retries` reads the retry wrapper's counter."""

    def __init__(self, store: Store, retries: Callable[[], int], plan: Plan,
                 on_cell: Callable[[Cell, int, int], None] | None = None) -> None:
        self.store = store
        self.retries = retries
        self.plan = plan
        self.on_cell = on_cell
        self.keys: dict[int, list[str]] = {}  # size -> keys written (write mode)
        self.sources: list[tuple[str, int]] = []  # (key, size) of existing packs (read-only mode)
        self.cells: list[Cell] = []
        self.setup_seconds = 0.0
        self._payload: dict[int, bytes] = {}
        self.rate: dict[tuple[str, int], float] = {}  # best bytes/s seen so far per (op, size)

    # -- the whole run ---------------------------------------------------------------------------
    async def run(self) -> list[Cell]:
        t0 = time.perf_counter()
        end = t0 + self.plan.duration
        cells = self._cells()
        await self._warm_up()
        self.setup_seconds = time.perf_counter() - t0
        for i, cell in enumerate(cells):
            now = time.perf_counter()
            left = end - now
            if left <= 0.01:
                cell.note = "skipped: the time budget ran out"
                self.cells.append(cell)
                continue
            slice_ = left / (len(cells) - i)
            rate = self.rate.get((cell.op, cell.size))
            if rate and cell.jobs * cell.size / rate > slice_ * FIT_SHARE:
                # One round of `jobs` requests would not fit in the slice: cancelling them would
                # leave the server busy with abandoned uploads and skew every later cell.
                cell.note = (f"skipped: {cell.jobs} x {cell.size / 2**20:.1f} MiB needs about "
                             f"{cell.jobs * cell.size / rate:.1f} s here; give a longer --duration")
                self.cells.append(cell)
                continue
            await self._run_cell(cell, now + slice_, min(end, now + slice_ * (1 + TAIL_SHARE)))
            if cell.seconds > 0 and cell.bytes:
                self.rate[(cell.op, cell.size)] = max(rate or 0.0, cell.bytes / cell.seconds)
            self.cells.append(cell)
            if self.on_cell is not None:
                self.on_cell(cell, i + 1, len(cells))
        return self.cells

    def _cells(self) -> list[Cell]:
        p = self.plan
        cells: list[Cell] = []
        for size in p.sizes:
            if not p.read_only:
                cells += [Cell("put", size, j) for j in p.jobs]
            cells += [Cell("get", size, j) for j in p.jobs]
        biggest = max(s for _, s in self.sources) if p.read_only and self.sources else max(p.sizes)
        cells += [Cell("range", min(RANGE_SIZE, biggest), j) for j in p.jobs]
        if self.store.can_list:
            cells.append(Cell("list", 0, 1))
        return cells

    # -- warm-up -------------------------------------------------------------------------------
    async def _warm_up(self) -> None:
        """One request per connection the largest cell uses, and one object of each size written
        and read back (write mode), so no cell pays for connection set-up or a cold first object."""
        if self.plan.read_only:
            await asyncio.gather(*(self.store.get(k, 0, min(s, RANGE_SIZE)) for k, s in
                                   self.sources[: max(self.plan.jobs)]))
            return
        for size in self.plan.sizes:
            self._payload[size] = os.urandom(size)
            key = f"obj/{size}/warm"
            t0 = time.perf_counter()
            await self.store.put(key, self._payload[size])
            t1 = time.perf_counter()
            if await self.store.get(key) != self._payload[size]:
                raise StorageError(f"{self.store.where(key)}: read back different bytes than were written")
            t2 = time.perf_counter()
            self.rate[("put", size)] = size / max(t1 - t0, 1e-6)
            self.rate[("get", size)] = size / max(t2 - t1, 1e-6)
            self.keys[size] = [key]
        smallest = min(self.plan.sizes)
        await asyncio.gather(*(self.store.exists(f"obj/{smallest}/warm") for _ in range(max(self.plan.jobs))))

    # -- one cell ------------------------------------------------------------------------------
    def _op(self, cell: Cell) -> Callable[[int], Awaitable[tuple[int, float | None, int]]]:
        """The request a worker repeats: i -> (bytes moved, time to first byte or None, keys)."""
        store, size = self.store, cell.size
        rng = random.Random(cell.size * 1000 + cell.jobs)
        if cell.op == "put":
            payload = self._payload[size]
            written = self.keys[size]

            async def put(i: int) -> tuple[int, float | None, int]:
                key = f"obj/{size}/{cell.jobs}-{i}"
                await store.put(key, payload)
                written.append(key)
                return size, None, 0
            return put
        if cell.op == "list":
            async def list_(i: int) -> tuple[int, float | None, int]:
                keys = await store.list("index/" if self.plan.read_only else "")
                return 0, None, len(keys)
            return list_
        if self.plan.read_only:
            fits = [(k, s) for k, s in self.sources if s >= size]

            async def read_part(i: int) -> tuple[int, float | None, int]:
                key, total = fits[i % len(fits)]
                start = rng.randrange(0, total - size + 1)
                data, ttfb = await store.get_timed(key, start, start + size)
                _check_len(store, key, data, size)
                return len(data), ttfb, 0
            return read_part
        if cell.op == "range":
            big = max(self.plan.sizes)
            key = self.keys[big][0]
            length = size

            async def read_range(i: int) -> tuple[int, float | None, int]:
                start = rng.randrange(0, big - length + 1)
                data, ttfb = await store.get_timed(key, start, start + length)
                _check_len(store, key, data, length)
                return len(data), ttfb, 0
            return read_range
        keys = self.keys[size]

        async def get(i: int) -> tuple[int, float | None, int]:
            key = keys[i % len(keys)]
            data, ttfb = await store.get_timed(key)
            _check_len(store, key, data, size)
            return len(data), ttfb, 0
        return get

    async def _run_cell(self, cell: Cell, stop: float, hard_stop: float) -> None:
        if self.plan.read_only and cell.op in ("get", "range") and not any(s >= cell.size for _, s in self.sources):
            cell.note = "skipped: no object on the remote is this large"
            return
        op = self._op(cell)
        cpu0 = time.process_time()
        start = time.perf_counter()
        window = start + (stop - start) * WARMUP_SHARE
        last = window
        retries0 = self.retries()
        first_error: StorageError | None = None
        counter = iter(range(1 << 62))

        async def worker() -> None:
            nonlocal last, first_error
            while time.perf_counter() < stop:
                i = next(counter)
                t0 = time.perf_counter()
                try:
                    nbytes, ttfb, nkeys = await op(i)
                except StorageError as exc:
                    if first_error is None:
                        first_error = exc
                    cell.errors += 1
                    if cell.errors >= 3 and cell.requests == 0:
                        return  # nothing works: do not hammer a failing endpoint
                    continue
                t1 = time.perf_counter()
                if t1 <= window:
                    continue
                last = max(last, t1)
                cell.requests += 1
                cell.bytes += nbytes
                cell.keys += nkeys
                cell.latencies.append(t1 - t0)
                if ttfb is not None:
                    cell.ttfbs.append(ttfb)

        tasks = [asyncio.ensure_future(worker()) for _ in range(cell.jobs)]
        try:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_stop - time.perf_counter()))
            cell.cut_off = len(pending)
        finally:
            # Also when the run itself is cancelled (Ctrl-C): no worker may outlive its cell and
            # write behind the clean-up's back.
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r
        cell.seconds = last - window
        cell.cpu = (time.process_time() - cpu0) / max(time.perf_counter() - start, 1e-9)
        cell.retries = self.retries() - retries0
        if cell.requests == 0 and first_error is not None:
            raise first_error
        if cell.requests == 0:
            cell.note = "no request finished inside its time slice; give a longer --duration"


def _check_len(store: Store, key: str, data: bytes, want: int) -> None:
    if len(data) != want:
        raise StorageError(f"{store.where(key)}: asked for {want} bytes, got {len(data)}")


# -- set-up and clean-up -----------------------------------------------------------------------
async def preflight(raw: Store, write: bool) -> None:
    """One request on the bare backend (no retries), bounded in time: an endpoint that cannot be
    reached, a missing bucket or bad credentials fail here, in seconds, with the backend's message."""
    try:
        async with asyncio.timeout(PREFLIGHT_TIMEOUT):
            if write:
                await raw.put("probe", b"fastreg bench\n")
                if await raw.get("probe") != b"fastreg bench\n":
                    raise StorageError(f"{raw.where('probe')}: read back different bytes than were written")
            else:
                await raw.exists(layout.MARKER_KEY)
    except TimeoutError:
        raise StorageError(f"{raw.url}: no answer within {PREFLIGHT_TIMEOUT:.0f} s; is the endpoint right "
                           "and reachable?") from None
    except StorageError as exc:
        raise StorageError(f"cannot use {raw.url} for a benchmark: {exc.message}") from None


async def find_packs(store: Store, roots: list[bytes], limit: int = 64) -> list[tuple[str, int]]:
    """Existing packs to read on a read-only remote: by listing, or (HTTP) through the root hints
    of `roots` (the current project's tracked data)."""
    if store.can_list:
        return [(o.key, o.size) for o in await store.list("packs/")][:limit]
    names: list[str] = []
    for root in roots:
        try:
            names += pack.decode_roots(await store.get(layout.roots_key(root)), store.where(layout.roots_key(root)))
        except ObjectNotFound:
            continue
        if len(names) >= limit:
            break
    out = []
    for name in sorted(set(names))[:limit]:
        seg = pack.decode_segment(await store.get(layout.index_key(name)), name)
        out.append((layout.pack_key(seg.pack), seg.pack_size))
    return out


async def cleanup(store: Store, jobs: int) -> int:
    """Delete every object under the bench prefix; returns how many."""
    keys = [o.key for o in await store.list("")]
    sem = asyncio.Semaphore(max(1, jobs))

    async def delete(key: str) -> None:
        async with sem:
            await store.delete(key)

    await asyncio.gather(*(delete(k) for k in keys))
    with contextlib.suppress(StorageError):
        left = await store.list("")
        if left:
            raise StorageError(f"{store.url}: {len(left)} objects were still there after clean-up")
    return len(keys)

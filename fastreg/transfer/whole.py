"""Whole objects by key, many at once: the engine's primitive for a store laid out as one object
per file (a DVC remote is one; fastreg's own remotes are packs and go through fetch.py).

Each item names the keys it may be at, tried in order (the first that exists wins). `jobs` GETs
run at once on the process's event loop (transfer/bridge.py); each object's bytes go to
`handle(item, data)` in a worker thread (verify and store: hashing is CPU work that must not
stall the loop), and `done(item, result, nbytes)` is called as each one lands, one call at a
time (on the loop's thread). The first failure (an item at none of its keys, a handler that
refuses the bytes, a storage error) stops the rest from starting and is raised once the requests
in flight have finished; what landed before it stays landed. The caller sees no asyncio: this
is a synchronous call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastreg.errors import ObjectNotFound
from fastreg.storage.base import Store
from fastreg.transfer import bridge

T = TypeVar("T")
R = TypeVar("R")


async def _first(store: Store, keys: Sequence[str]) -> bytes | None:
    for key in keys:
        try:
            return await store.get(key)
        except ObjectNotFound:
            continue
    return None


def get_one(open_store: Callable[[], Store], keys: Sequence[str]) -> bytes | None:
    """The object at the first of keys that exists, or None."""
    async def run() -> bytes | None:
        store = open_store()
        try:
            return await _first(store, keys)
        finally:
            await store.close()

    return bridge.run(run())


def get_many(open_store: Callable[[], Store], items: Sequence[tuple[T, Sequence[str]]], jobs: int,
             handle: Callable[[T, bytes], R], done: Callable[[T, R, int], None],
             missing: Callable[[T], Exception]) -> int:
    """Every item's object, handled as it arrives (see the module doc); the bytes downloaded."""
    if not items:
        return 0
    return bridge.run(_get_many(open_store, items, jobs, handle, done, missing))


async def _get_many(open_store: Callable[[], Store], items: Sequence[tuple[T, Sequence[str]]], jobs: int,
                    handle: Callable[[T, bytes], R], done: Callable[[T, R, int], None],
                    missing: Callable[[T], Exception]) -> int:
    store = open_store()
    loop = asyncio.get_running_loop()
    total = 0
    failed: list[BaseException] = []
    queue = iter(items)
    with ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2))) as pool:
        async def worker() -> None:
            nonlocal total
            for item, keys in queue:
                if failed:
                    return
                try:
                    data = await _first(store, keys)
                    if data is None:
                        raise missing(item)
                    result = await loop.run_in_executor(pool, handle, item, data)
                except Exception as exc:
                    failed.append(exc)
                    return
                total += len(data)
                done(item, result, len(data))

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(jobs, len(items))))))
        finally:
            await store.close()
    if failed:
        raise failed[0]
    return total

"""Wrappers that add behaviour to any Store: retries and a concurrency limit."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastreg.errors import StorageError
from fastreg.storage.base import Listing, Store

T = TypeVar("T")


#: Seconds a failing request keeps being retried by default: a store that restarts (a few
#: seconds) or a load balancer that fails over is waited out, a store that is down is not.
DEFAULT_BUDGET = 30.0


class RetryingStore(Store):
    """Retries requests whose StorageError is retryable (the backend's classifier decided:
    5xx, throttling, timeouts, connection resets), with capped exponential backoff and full
    jitter, until `budget` seconds have passed since the first try (or `attempts`, when given,
    are spent); never retries 4xx such as 403/404. `retries` counts the retries that happened."""

    def __init__(self, inner: Store, attempts: int | None = None, base_delay: float = 0.1, max_delay: float = 5.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, budget: float = DEFAULT_BUDGET,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.url = inner.url
        self.connections = inner.connections
        self.can_list = inner.can_list
        self.read_only = inner.read_only
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.budget = budget
        self.retries = 0
        self._sleep = sleep
        self._clock = clock

    async def _retry(self, op: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        attempt = 0
        while True:
            try:
                return await op()
            except StorageError as exc:
                if not exc.retryable:
                    raise
                attempt += 1
                delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 30)))
                spent = self._clock() - started
                if (self.attempts is not None and attempt >= self.attempts) or spent + delay > self.budget:
                    raise StorageError(f"{exc.message} (gave up after {attempt} attempts in {spent:.0f} s; the "
                                       "remote option retry_budget sets how long to keep trying)") from None
                self.retries += 1
                await self._sleep(delay)

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return await self._retry(lambda: self.inner.get(key, start, end))

    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        return await self._retry(lambda: self.inner.get_timed(key, start, end))

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        return await self._retry(lambda: self.inner.get_into(key, start, end, buf))

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        await self._retry(lambda: self.inner.put(key, data))

    async def exists(self, key: str) -> bool:
        return await self._retry(lambda: self.inner.exists(key))

    async def list(self, prefix: str) -> Listing:
        return await self._retry(lambda: self.inner.list(prefix))

    async def delete(self, key: str) -> None:
        await self._retry(lambda: self.inner.delete(key))

    async def close(self) -> None:
        await self.inner.close()


class LimitedStore(Store):
    """At most `limit` requests in flight, whatever the callers do."""

    def __init__(self, inner: Store, limit: int) -> None:
        self.inner = inner
        self.url = inner.url
        self.connections = limit
        self.can_list = inner.can_list
        self.read_only = inner.read_only
        self._sem = asyncio.Semaphore(limit)

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        async with self._sem:
            return await self.inner.get(key, start, end)

    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        async with self._sem:
            return await self.inner.get_timed(key, start, end)

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        async with self._sem:
            return await self.inner.get_into(key, start, end, buf)

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        async with self._sem:
            await self.inner.put(key, data)

    async def exists(self, key: str) -> bool:
        async with self._sem:
            return await self.inner.exists(key)

    async def list(self, prefix: str) -> Listing:
        async with self._sem:
            return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        async with self._sem:
            await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()

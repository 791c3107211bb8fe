"""Retry and limit wrappers over the in-memory Store: the retry decision comes from the error's
classification, never from its text."""

from __future__ import annotations

import asyncio

import pytest

from fastreg.errors import ObjectNotFound, StorageError
from fastreg.storage.memory import MemoryStore
from fastreg.storage.wrappers import LimitedStore, RetryingStore


class Flaky(MemoryStore):
    """Fails the first `failures` gets with a retryable error (like a 503 or a reset)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if self.failures:
            self.failures -= 1
            raise StorageError("503 Service Unavailable", retryable=True)
        return await super().get(key, start, end)


async def no_sleep(_: float) -> None:
    return None


async def test_retryable_errors_are_retried_then_succeed() -> None:
    inner = Flaky(3)
    await inner.put("k", b"value")
    store = RetryingStore(inner, attempts=5, sleep=no_sleep)
    assert await store.get("k", 1, 3) == b"al"
    assert store.retries == 3


async def test_gives_up_after_attempts_and_never_retries_not_found() -> None:
    store = RetryingStore(Flaky(10), attempts=3, sleep=no_sleep)
    with pytest.raises(StorageError, match="gave up after 3 attempts"):
        await store.get("k")
    assert store.retries == 2
    plain = RetryingStore(MemoryStore(), attempts=5, sleep=no_sleep)
    with pytest.raises(ObjectNotFound):
        await plain.get("missing")
    assert plain.retries == 0


async def test_backoff_is_capped_and_jittered() -> None:
    delays: list[float] = []

    async def record(d: float) -> None:
        delays.append(d)

    store = RetryingStore(Flaky(5), attempts=6, base_delay=0.1, max_delay=0.3, sleep=record)
    await store.inner.put("k", b"v")
    await store.get("k")
    assert len(delays) == 5 and all(0 <= d <= 0.3 for d in delays)


async def test_limit_bounds_requests_in_flight() -> None:
    inner = MemoryStore()
    await inner.put("k", b"v")
    active = peak = 0
    original = inner.get

    async def slow_get(key: str, start: int | None = None, end: int | None = None) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return await original(key, start, end)

    inner.get = slow_get  # type: ignore[method-assign]
    store = LimitedStore(inner, 3)
    await asyncio.gather(*(store.get("k") for _ in range(20)))
    assert peak == 3


async def test_a_cancelled_caller_waits_for_its_thread_and_its_failure_is_not_printed() -> None:
    """A push that fails cancels its other requests; a request's thread that then fails too
    (a server going away fails them all) must not print "Future exception was never retrieved"
    with a traceback beside the one `error:` line."""
    import gc
    import threading

    from fastreg.storage.base import in_thread

    reported: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    started, finished = threading.Event(), threading.Event()

    def fails() -> None:
        started.set()
        threading.Event().wait(0.2)
        finished.set()
        raise StorageError("s3://b/k: S3 error InternalError")

    try:
        task = asyncio.ensure_future(in_thread(None, fails))
        await asyncio.to_thread(started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()  # the thread had finished before the cancellation went on
        del task
        gc.collect()
        await asyncio.sleep(0)
        assert reported == []
    finally:
        loop.set_exception_handler(None)


def test_a_host_name_that_does_not_resolve_is_not_retried() -> None:
    """A typo in an endpoint fails at once (no budget spent on retries); a temporary resolver
    failure is retried."""
    import socket

    import botocore.exceptions as bx

    from fastreg.storage.base import unresolvable_host
    from fastreg.storage.s3 import classify

    gone = bx.EndpointConnectionError(endpoint_url="http://nosuchhost.invalid:9000/b",
                                      error=socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    err = classify(gone, "s3://b/k")
    assert not err.retryable and "does not resolve" in err.message and "endpoint_url" in err.message
    later = bx.EndpointConnectionError(endpoint_url="http://flaky:9000/b",
                                       error=socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))
    assert classify(later, "s3://b/k").retryable
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except OSError as inner:
            raise ConnectionError("cannot connect") from inner
    except ConnectionError as outer:
        assert unresolvable_host(outer)
    assert not unresolvable_host(ConnectionResetError("reset"))

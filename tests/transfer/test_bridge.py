"""transfer/bridge.py: the one loop a process runs coroutines on from synchronous code."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from fastreg.transfer import bridge


def test_results_exceptions_and_calls_from_many_threads() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    assert bridge.run(double(21)) == 42
    with pytest.raises(KeyError, match="nope"):
        bridge.run(_raise(KeyError("nope")))
    got: list[int] = []
    threads = [threading.Thread(target=lambda i=i: got.append(bridge.run(double(i)))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [2 * i for i in range(8)]
    # the same loop serves every call: connections made on it are reused
    assert bridge.run(_loop_id()) == bridge.run(_loop_id())


async def _raise(exc: BaseException) -> None:
    raise exc


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


def test_a_call_from_the_loop_itself_is_refused_not_a_deadlock() -> None:
    async def inner() -> None:
        bridge.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="own thread"):
        bridge.run(inner())


def test_ctrl_c_cancels_the_coroutine_and_lets_it_unwind() -> None:
    unwound = threading.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            unwound.set()

    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        bridge.run(long())
    assert time.monotonic() - t0 < 5 and unwound.is_set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_gets_a_loop_of_its_own() -> None:
    parent = bridge.run(_loop_id())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own loop works; the parent's is never run here
        try:
            child = bridge.run(_loop_id())
            os.write(w, b"ok" if child != parent and bridge.run(asyncio.sleep(0, 7)) == 7 else b"no")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 2) == b"ok"
    os.waitpid(pid, 0)
    assert bridge.run(_loop_id()) == parent

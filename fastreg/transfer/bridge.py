"""The one bridge from synchronous code to asyncio: every synchronous caller of the transfer
engine (RemoteSession, PackReader, whole-object reads) and the storage benchmark run their
coroutines here. The web view's server is not synchronous code but an application loop of its
own (`asyncio.run` in cli/ui.py): its handlers hand registry reads to worker threads, which call
this bridge; were the server on this loop too, those threads would hold the loop's default
executor while the reads they wait for need it (local stores read through it), and enough
requests at once would starve them.

Lifetime: one event loop per process, on a daemon thread named `fastreg-loop`, started by the
first call that needs it and kept until the interpreter exits, so the Stores' connections are
reused across calls and sessions. Fork-safe: a process forked after that gets a loop of its own
at its first call; the parent's loop and the connections on it are never run, nor closed, in the
child (a RemoteSession or PackReader made in the parent refuses to, by its pid). At interpreter
exit (atexit) the tasks still pending are cancelled and the loop stops; Stores are closed by
their owners before that (a session closes its store).

`run(coro)` runs coro on the loop and returns its result (or raises its exception), from any
thread but the loop's own. Ctrl-C in the caller (KeyboardInterrupt) cancels the coroutine, waits
for it to unwind (up to 10 s: temp files removed, requests aborted) and re-raises. The result
comes back through a box, never as a Future's repr (a read's result is its bytes)."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

UNWIND_TIMEOUT = 10.0  # seconds an interrupted coroutine gets to unwind


class _Loop:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="fastreg-loop", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        async def cancel_pending() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_pending(), self.loop).result(timeout=5)
        except Exception:
            pass  # best effort: the process is ending
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


_current: _Loop | None = None
_lock = threading.Lock()


def _this_process() -> _Loop:
    global _current
    cur = _current
    if cur is None or cur.pid != os.getpid():
        with _lock:
            cur = _current
            if cur is None or cur.pid != os.getpid():
                cur = _current = _Loop()
    return cur


def loop() -> asyncio.AbstractEventLoop:
    """This process's loop (started if needed)."""
    return _this_process().loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """coro to its end on this process's loop; its result, or its exception raised here."""
    cur = _this_process()
    if threading.current_thread() is cur.thread:
        coro.close()
        raise RuntimeError("bridge.run from the loop's own thread would wait for itself; await the coroutine")
    done = threading.Event()
    box: list[tuple[bool, Any]] = []

    async def boxed() -> None:
        try:
            box.append((True, await coro))
        except BaseException as exc:
            box.append((False, exc))
        finally:
            done.set()

    future = asyncio.run_coroutine_threadsafe(boxed(), cur.loop)
    try:
        done.wait()
    except BaseException:  # Ctrl-C in the caller: the coroutine stops too, after unwinding
        future.cancel()
        done.wait(UNWIND_TIMEOUT)
        raise
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


@atexit.register
def _shutdown() -> None:
    cur = _current
    if cur is not None and cur.pid == os.getpid():
        cur.stop()

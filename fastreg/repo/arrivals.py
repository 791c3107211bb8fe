"""Check out while downloading: one command's download fills a cache while a job of its own
(a pull's check-out, the output of a get or import) places files from it as they arrive.

This is per-command state, kept apart from the Cache (which several projects and threads share):
an Arrivals belongs to one download, and only its own job waits on it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastreg.repo.cache import Cache


class Arrivals:
    """Objects one download is bringing into a cache. The download calls note() after each
    response and close() when it ends (done or failed); the job calls wait_for()."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._cond = threading.Condition()
        self._open = True

    def note(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Nothing more will arrive: waiters stop waiting."""
        with self._cond:
            self._open = False
            self._cond.notify_all()

    def wait_for(self, digests: list[bytes]) -> None:
        """Return once every object is in the cache, or once no more can arrive (the caller then
        finds what is missing as usual)."""
        for d in digests:
            if self.cache.has_file(d):
                continue
            with self._cond:
                while self._open and not self.cache.has_file(d):
                    self._cond.wait(1.0)


class Alongside:
    """One job run in a thread of its own while the caller downloads; the job waits for each
    object with `arrivals.wait_for`. Use: `side = Alongside(cache)`, `side.start(job)` (now or
    from a callback), download with `on_arrival=side.arrivals.note`, then `side.close()` in a
    finally (no more arrivals: the job stops waiting and ends), then `side.result()`, which
    re-raises the job's error. A failed download raises before result() is asked for, so its
    error, not the job's, is what the caller reports."""

    def __init__(self, cache: Cache) -> None:
        self.arrivals = Arrivals(cache)
        self._thread: threading.Thread | None = None
        self._outcome: list[object] = []
        self._error: list[BaseException] = []

    def start(self, job: Callable[[Arrivals], object]) -> None:
        def run() -> None:
            try:
                self._outcome.append(job(self.arrivals))
            except BaseException as exc:  # re-raised by result(), in the caller's thread
                self._error.append(exc)

        self._thread = threading.Thread(target=run, name="fastreg-alongside", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.arrivals.close()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> object:
        if self._error:
            raise self._error[0]
        return self._outcome[0] if self._outcome else None

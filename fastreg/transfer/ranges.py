"""Ranged reads of a remote's packs for callers that run in plain threads (a training dataset's
readers): the Store on an event loop in a thread of its own, made in the process that uses it.
Fork safe: a forked child never runs, nor closes, the loop and connections it inherited."""

from __future__ import annotations

import asyncio
import os
import threading

from fastreg.storage.base import Store
from fastreg.transfer.layout import pack_key


class PackReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.pid = os.getpid()
        self.closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fastreg-packs", daemon=True)
        self._thread.start()

    def read(self, ranges: list[tuple[bytes, int, int]]) -> list[bytes]:
        """Bytes [start, end) of each (pack digest, start, end), all requested at once (the
        Store limits how many are in flight); callable from any thread of this process."""
        if self.pid != os.getpid() or self.closed:
            raise RuntimeError("a PackReader is used in the process that made it, until closed")

        async def run() -> list[bytes]:
            return list(await asyncio.gather(*(self.store.get(pack_key(p), s, e) for p, s, e in ranges)))

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def close(self) -> None:
        if self.pid != os.getpid() or self.closed:
            return  # another process's: its loop and connections are not this one's to touch
        self.closed = True
        try:
            asyncio.run_coroutine_threadsafe(self.store.close(), self._loop).result(timeout=10)
        except Exception:
            pass  # closing is best effort: the connections go with the process
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

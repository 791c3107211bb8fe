"""Ranged reads of a remote's packs for callers that run in plain threads (a training dataset's
readers), on the process's event loop (transfer/bridge.py). Fork safe: a reader made in one
process is used and closed only there (a forked child makes its own)."""

from __future__ import annotations

import asyncio
import os

from fastreg.storage.base import Store
from fastreg.transfer import bridge
from fastreg.transfer.layout import pack_key


class PackReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.pid = os.getpid()
        self.closed = False

    def read(self, ranges: list[tuple[bytes, int, int]]) -> list[bytes]:
        """Bytes [start, end) of each (pack digest, start, end), all requested at once (the
        Store limits how many are in flight); callable from any thread of this process."""
        if self.pid != os.getpid() or self.closed:
            raise RuntimeError("a PackReader is used in the process that made it, until closed")

        async def run() -> list[bytes]:
            return list(await asyncio.gather(*(self.store.get(pack_key(p), s, e) for p, s, e in ranges)))

        return bridge.run(run())

    def close(self) -> None:
        if self.pid != os.getpid() or self.closed:
            return  # another process's: its connections are not this one's to touch
        self.closed = True
        try:
            bridge.run(asyncio.wait_for(self.store.close(), 10))
        except Exception:
            pass  # closing is best effort: the connections go with the process

"""The synchronous face of the transfer layer: one event loop (asyncio.Runner) per command,
shared by its steps, and the Store closed at the end. Callers above this layer never see
asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from fastreg.errors import IntegrityError, MissingDataError, ObjectNotFound
from fastreg.objects import pack as pk
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.storage.base import Store
from fastreg.transfer import check as check_mod
from fastreg.transfer import fetch as fetch_mod
from fastreg.transfer import gc as gc_mod
from fastreg.transfer import push as push_mod
from fastreg.transfer import snapshots as snap_mod
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local import LocalObjects

T = TypeVar("T")


class RemoteSession:
    def __init__(self, store: Store, cache: LocalObjects, mirror: RemoteIndex, jobs: int) -> None:
        self.store = store
        self.cache = cache
        self.mirror = mirror
        self.jobs = jobs
        self._runner = asyncio.Runner()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._runner.run(self.store.close())
        finally:
            self._runner.close()

    def push(self, work: push_mod.PushWork, pack_size: int, progress: Progress | None = None,
             distrust: frozenset[bytes] = frozenset()) -> push_mod.PushResult:
        opts = push_mod.PushOptions(pack_size, self.jobs, progress, distrust)
        return self._runner.run(push_mod.push(self.store, self.cache, self.mirror, work, opts))

    def damaged_chunks(self, damaged: dict[bytes, set[bytes] | None]) -> set[bytes]:
        return self._runner.run(push_mod.damaged_chunks(self.store, self.mirror, damaged))

    def repair_damaged(self, damaged: dict[bytes, set[bytes] | None]) -> int:
        n = self._runner.run(push_mod.repair_damaged(self.store, self.mirror, damaged))
        self.mirror.save()
        return n

    def check(self, roots: list[check_mod.CheckRoot], read: float | int | bool | None) -> check_mod.CheckReport:
        return self._runner.run(check_mod.check(self.store, self.cache, self.mirror.path.with_name("check"), roots,
                                                read, self.jobs))

    def learn_trees(self) -> None:
        """Add the tree nodes the remote holds (one listing of trees/) to what the mirror knows."""
        self._runner.run(self.mirror.learn_trees(self.store))
        self.mirror.save()

    def refresh_from_hints(self, nodes: list[bytes]) -> int:
        """Merge only the index segments the locator hints of `nodes` name (no listing)."""
        n = self._runner.run(self.mirror.refresh_hints(self.store, nodes))
        self.mirror.save()
        return n

    def fetch_tree_node(self, digest: bytes) -> bytes:
        return self._runner.run(fetch_mod.fetch_node(self.store, self.cache, digest))

    def check_format(self) -> None:
        self._runner.run(push_mod.ensure_format(self.store, self.mirror, create=False))

    def refresh(self, roots: list[bytes]) -> int:
        n = self._runner.run(self.mirror.refresh(self.store, roots))
        self.mirror.save()
        return n

    def fetch_trees(self, roots: list[bytes]) -> int:
        return self._runner.run(fetch_mod.fetch_trees(self.store, self.cache, roots))

    def fetch_record(self, digest: bytes, size: int) -> FileRecord:
        return self._runner.run(fetch_mod.fetch_record(self.store, digest, size))

    def fetch_files(self, files: Iterable[FileRecord], roots: list[bytes],
                    progress: Progress | None = None, total_bytes: int | None = None,
                    on_arrival: Callable[[], None] | None = None) -> fetch_mod.FetchResult:
        opts = fetch_mod.FetchOptions(self.jobs, progress, total_bytes, on_arrival)
        return self._runner.run(fetch_mod.fetch_files(self.store, self.cache, self.mirror, files, roots, opts))

    def gc(self, keep: gc_mod.GcKeep, grace: float) -> gc_mod.RemoteGcResult:
        return self._runner.run(gc_mod.gc(self.store, self.mirror, keep, gc_mod.GcOptions(grace, self.jobs)))

    def projects(self) -> list[snap_mod.ProjectEntry]:
        return self._runner.run(snap_mod.projects(self.store))

    def read_snapshot(self, key: str) -> pk.Snapshot | None:
        return self._runner.run(snap_mod.read(self.store, key))

    def write_snapshot(self, snap: pk.Snapshot, known: str | None) -> tuple[str | None, int]:
        return self._runner.run(snap_mod.write(self.store, snap, known))

    def delete(self, keys: list[str]) -> None:
        async def run() -> None:
            await asyncio.gather(*(self.store.delete(k) for k in keys))

        self._runner.run(run())

    def retire(self, entries: list[snap_mod.ProjectEntry]) -> int:
        return self._runner.run(snap_mod.retire(self.store, entries))

    def read_chunks(self, wanted: list[tuple[bytes, int]], roots: list[bytes] | None = None) -> dict[bytes, bytes]:
        """Several chunks, neighbours coalesced into one ranged GET, verified. The mirror is a
        cache of the remote's index: when what it points at is gone or damaged (a producer's push
        may have repaired it since), it is refreshed from the remote (`roots`: the targets whose
        locator hints a reader that cannot list follows) and the read tried once more."""
        return self._again(lambda: fetch_mod.read_chunks(self.store, self.mirror, wanted, self.jobs), roots)

    def read_chunk(self, digest: bytes, length: int, roots: list[bytes] | None = None) -> bytes:
        """One chunk straight from its pack (a ranged GET), verified; for streaming reads (the
        same refresh-and-retry rule as read_chunks)."""
        return self._again(lambda: fetch_mod.read_chunk(self.store, self.mirror, digest, length), roots)

    def _again(self, read: Callable[[], Coroutine[Any, Any, T]], roots: list[bytes] | None) -> T:
        try:
            return self._runner.run(read())
        except (IntegrityError, MissingDataError, ObjectNotFound):
            self.refresh(roots or [])
            return self._runner.run(read())

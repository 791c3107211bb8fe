"""The synchronous face of the transfer layer: a session's steps run on the process's event loop
(transfer/bridge.py), and its Store is closed at the end. Callers above this layer never see
asyncio, nor the remote's index mirror: what the remote has is asked of the session, which asks
its RemoteView (transfer/view.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from fastreg.errors import IntegrityError, MissingDataError, ObjectNotFound
from fastreg.objects import pack
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location
from fastreg.progress import Progress
from fastreg.storage.base import Store
from fastreg.transfer import bridge, metadata, push_plan, ranges
from fastreg.transfer import fetch as fetch_mod
from fastreg.transfer import remote_check as check_mod
from fastreg.transfer import remote_gc as gc_mod
from fastreg.transfer import snapshots as snap_mod
from fastreg.transfer import upload as push_mod
from fastreg.transfer.index import RemoteIndex, mirror_path
from fastreg.transfer.local_objects import LocalObjects
from fastreg.transfer.view import RemoteView

T = TypeVar("T")


def open_session(store: Store, cache: LocalObjects, state_dir: Path, jobs: int) -> RemoteSession:
    """A session on store, reading into and pushing from cache, with the remote's index mirror
    kept under state_dir (loaded now; missing or damaged, it is rebuilt from the remote)."""
    mirror = RemoteIndex(mirror_path(state_dir, store.url), store.url).load()
    return RemoteSession(store, cache, mirror, jobs)


class RemoteSession:
    def __init__(self, store: Store, cache: LocalObjects, mirror: RemoteIndex, jobs: int) -> None:
        self.store = store
        self.cache = cache
        self.view = RemoteView(store, mirror)
        self.jobs = jobs
        self._pid = os.getpid()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._pid != os.getpid():
            # a forked child closing what it inherited (fsspec drops its instances at fork): the
            # connections are on the parent's loop; running them here would hang or break them
            return
        bridge.run(self.store.close())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """coro to its end on the process's loop (transfer/bridge.py)."""
        if self._pid != os.getpid():
            coro.close()
            raise RuntimeError("a RemoteSession is used in the process that made it")
        return bridge.run(coro)

    # -- what the remote has -------------------------------------------------------------------
    def has_file(self, rec: FileRecord) -> bool:
        """Every chunk of rec is on the remote, as far as this command knows."""
        return self.view.has_file(rec)

    def check_format(self) -> None:
        self._run(self.view.check_format())

    def locate(self, chunks: Iterable[bytes], hints: Iterable[bytes] = (), roots: Iterable[bytes] = ()) -> None:
        """Learn where `chunks` are: the locator hints of `hints` first, then a refresh (the
        listing, and the hints of `roots` for a remote that cannot be listed)."""
        chunks = list(chunks)
        if all(self.view.mirror.has(d) for d in chunks):
            return  # all known already (the common case of a file read after its neighbours): no loop run
        self._run(self.view.locate(chunks, list(hints), list(roots)))

    def locations(self, chunks: Iterable[bytes]) -> dict[bytes, Location]:
        """Where the remote keeps each chunk, as the view knows it (after locate()); unknown
        chunks are left out."""
        out = {}
        for d in chunks:
            loc = self.view.find(d)
            if loc is not None:
                out[d] = loc
        return out

    def lacking(self, targets: list[push_plan.PushTarget]) -> list[push_plan.Lacking]:
        """What a push of each target would send (status --remote)."""
        return self._run(push_plan.lacking(self.view, self.cache, targets))

    def unpushed(self, targets: list[push_plan.PushTarget]) -> push_plan.Unpushed:
        """The local cache objects of these targets that the remote lacks (what gc must keep)."""
        return self._run(push_plan.unpushed(self.view, self.cache, targets))

    # -- reading -------------------------------------------------------------------------------
    def fetch_tree_node(self, digest: bytes) -> bytes:
        return self._run(metadata.fetch_node(self.store, self.cache, digest))

    def fetch_trees(self, roots: list[bytes]) -> int:
        return self._run(metadata.fetch_trees(self.store, self.cache, roots))

    def fetch_record(self, digest: bytes, size: int) -> FileRecord:
        return self._run(metadata.fetch_record(self.store, digest, size))

    def fetch_files(self, files: Iterable[FileRecord], roots: list[bytes],
                    progress: Progress | None = None, total_bytes: int | None = None,
                    on_arrival: Callable[[], None] | None = None) -> fetch_mod.FetchResult:
        opts = fetch_mod.FetchOptions(self.jobs, progress, total_bytes, on_arrival)
        return self._run(fetch_mod.fetch_files(self.store, self.cache, self.view.mirror, files, roots, opts))

    def read_chunks(self, wanted: list[tuple[bytes, int]], roots: list[bytes] | None = None) -> dict[bytes, bytes]:
        """Several chunks, neighbours coalesced into one ranged GET, verified. The mirror is a
        cache of the remote's index: when what it points at is gone or damaged (a producer's push
        may have repaired it since), it is refreshed from the remote (`roots`: the targets whose
        locator hints a reader that cannot list follows) and the read tried once more."""
        return self._again(lambda: ranges.read_chunks(self.store, self.view.mirror, wanted, self.jobs), roots)

    def read_chunk(self, digest: bytes, length: int, roots: list[bytes] | None = None) -> bytes:
        """One chunk straight from its pack (a ranged GET), verified; for streaming reads (the
        same refresh-and-retry rule as read_chunks)."""
        return self._again(lambda: ranges.read_chunk(self.store, self.view.mirror, digest, length), roots)

    def _again(self, read: Callable[[], Coroutine[Any, Any, T]], roots: list[bytes] | None) -> T:
        try:
            return self._run(read())
        except (IntegrityError, MissingDataError, ObjectNotFound):
            self._run(self.view.refresh(roots or []))
            return self._run(read())

    # -- writing -------------------------------------------------------------------------------
    def push(self, targets: list[push_plan.PushTarget], pack_size: int, progress: Progress | None = None,
             everything: bool = False) -> push_mod.PushResult:
        """Upload what the remote lacks of targets (see transfer/upload.py); `everything`: these
        are all of the project's targets (a recorded damage is then known to be repaired)."""
        opts = push_mod.PushOptions(pack_size, self.jobs, progress)
        return self._run(push_mod.push(self.view, self.cache, targets, opts, everything))

    def write_snapshot(self, snap: pack.Snapshot, roots_digest: str) -> int:
        """Leave a project's snapshot on the remote, unless the one this clone wrote last has the
        same roots (`roots_digest`) and is still there. Returns the requests it took."""
        return self._run(snap_mod.write_once(self.store, self.view.state_dir / "snapshot", snap, roots_digest))

    # -- administration ------------------------------------------------------------------------
    def check(self, roots: list[check_mod.CheckRoot], read: float | int | bool | None,
              record: bool) -> check_mod.CheckReport:
        """Is the remote whole for roots? With record, what is damaged is remembered beside the
        mirror, for the next push to repair."""
        report = self._run(check_mod.check(self.store, self.cache, self.view.state_dir / "check", roots,
                                           read, self.jobs))
        if report.problems and record:
            self.view.record_damage(report.damaged_packs())
        return report

    def gc(self, keep: gc_mod.GcKeep, grace: float) -> gc_mod.RemoteGcResult:
        return self._run(gc_mod.gc(self.store, self.view.mirror, keep, gc_mod.GcOptions(grace, self.jobs)))

    def projects(self) -> list[snap_mod.ProjectEntry]:
        return self._run(snap_mod.projects(self.store))

    def read_snapshot(self, key: str) -> pack.Snapshot | None:
        return self._run(snap_mod.read(self.store, key))

    def delete(self, keys: list[str]) -> None:
        async def run() -> None:
            await asyncio.gather(*(self.store.delete(k) for k in keys))

        self._run(run())

    def retire(self, entries: list[snap_mod.ProjectEntry]) -> int:
        return self._run(snap_mod.retire(self.store, entries))

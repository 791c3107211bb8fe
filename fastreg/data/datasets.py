"""Training datasets read straight from a registry revision (see docs/train.md).

RegistryDataset is map-style (len, ds[i], and ds.__getitems__ for a DataLoader's whole batch in
one go); RegistryIterableDataset streams: it reads whole spans of packs with sequential ranged
GETs, in a shuffled order, through a shuffle buffer, split across DataLoader workers and ranks.
Both yield Sample(data, label, path), the same for the same index; both build the sample index at
construction (so a wrong revision, path or an unpushed file fails there), and both keep what they
read in a bounded local cache, so the next epoch reads local disk.

Fork and spawn safe: a process's event loop, store connections and the index's memory map are
made on first use in that process (found by its pid); a pickled dataset carries none of them.
"""

from __future__ import annotations

import collections
import os
import sys
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fastreg import userdirs
from fastreg.chunking import file_matches, iter_chunks
from fastreg.data import order
from fastreg.data.sample_cache import EVICT_TO, SampleCache, extent_key
from fastreg.data.sample_index import SPAN_BYTES, SampleIndex, build, index_key
from fastreg.errors import (
    DecodeError,
    IntegrityError,
    MissingDataError,
    MissingObjectError,
    ObjectNotFound,
    PathError,
    UsageError,
)
from fastreg.objects.digest import matches
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location
from fastreg.repo.remotes import Remote, open_store
from fastreg.transfer.ranges import PackReader, verified

if TYPE_CHECKING:
    from fastreg.registry.fastreg_reader import FastregReader
    from fastreg.registry.reader import Located

PREFETCH = 2  # spans a streaming reader has in flight (each up to SPAN_BYTES)


def _torch_bases() -> tuple[type, type]:
    try:
        import torch.utils.data as tud  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return object, object
    return tud.Dataset, tud.IterableDataset


_MapBase, _IterBase = _torch_bases()


class Sample(NamedTuple):
    """One training sample: the file's bytes (or what `transform` made of them), its class index
    (its first folder level under the dataset's path; -1 for a file at the top) and its path from
    the registry's root."""

    data: Any
    label: int
    path: str


class _Process:
    """What one process reads with: the remote's packs (transfer/ranges.py) and threads that
    run span reads ahead. Made lazily in the process that uses it."""

    def __init__(self, remote: Remote, base: Path, jobs: int) -> None:
        self.packs = PackReader(open_store(remote, base, jobs), jobs)
        self.pool = ThreadPoolExecutor(PREFETCH, thread_name_prefix="fastreg-data-read")
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # another process's
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.packs.close()


class _RegistryData:
    """What both datasets share: the revision resolved once, the sample index, the cache, and
    reading samples (cache first, then ranged GETs of the remote's packs, every byte verified)."""

    def __init__(self, repo: str, path: str, rev: str | None, *, transform: Callable[[bytes], Any] | None,
                 cache_dir: str | os.PathLike[str] | None, cache_limit: int | None, jobs: int | None) -> None:
        from fastreg.registry import fastreg_reader
        from fastreg.registry.kinds import open_reader
        from fastreg.registry.reader import clean_path

        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir is not None else userdirs.datasets()
        self.cache_limit = cache_limit
        self._cache = SampleCache(self.cache_dir, cache_limit)  # checks the limit before any network
        with open_reader(repo, rev, jobs=jobs) as reader:
            if not isinstance(reader, fastreg_reader.FastregReader):  # the sample index points into fastreg's packs
                raise UsageError(f"{reader.url} is a {reader.kind} project: fastreg.data reads fastreg registries "
                                 "(`fastreg migrate` turns a DVC project into one)")
            loc = reader.locate(path)
            if loc.meta is None:
                raise PathError(f"{loc.path}: a plain Git file in {reader.url}, not tracked data")
            remote, base = reader.remote_spec()
            self.repo, self.commit, self.rev, self.path = reader.url, reader.commit, reader.rev, clean_path(path)
            self._remote, self._base = remote, base
            self._jobs = jobs or remote.default_jobs()
            self.index_path = self.cache_dir / "index" / f"{index_key(self.repo, self.commit, self.path, remote.url)}"
            if not self._index_ok():
                self._build(reader, loc)
        self._proc: _Process | None = None
        self._ix: SampleIndex | None = None
        self._fit: tuple[int, bool] | None = None
        self._pid = os.getpid()
        self.classes: list[str] = list(self.index.classes)
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}

    def _index_ok(self) -> bool:
        try:
            SampleIndex(self.index_path).close()
            return True
        except (OSError, ValueError, DecodeError):  # missing or damaged: build it again
            return False

    def _build(self, reader: FastregReader, loc: Located) -> None:
        try:
            if isinstance(reader.record(loc), FileRecord):
                raise PathError(f"{loc.path}: a file; give the folder of the samples")
            files = list(reader.walk(loc))
            reader.prepare(loc, [r for _, r in files])
            where = reader.source.locations(
                d for _, r in files if r.size for d, _ in iter_chunks(r.chunks, r.digest, r.size))
            build(self.index_path, self.repo, self.commit, self.path, self._remote.url, files, where)
        except MissingDataError as exc:
            raise MissingObjectError(f"{self.path} at {self.commit[:10]}: {exc.message}") from None

    # -- per process -----------------------------------------------------------------------------
    def _mine(self) -> None:
        if self._pid != os.getpid():  # forked: nothing of the parent's is used (nor closed) here
            self._proc, self._ix, self._pid = None, None, os.getpid()

    @property
    def index(self) -> SampleIndex:
        self._mine()
        if self._ix is None:
            self._ix = SampleIndex(self.index_path)
        return self._ix

    @property
    def proc(self) -> _Process:
        self._mine()
        if self._proc is None:
            self._proc = _Process(self._remote, self._base, self._jobs)
            weakref.finalize(self, self._proc.close)
        return self._proc

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_proc"] = state["_ix"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def close(self) -> None:
        """Finish this process's cache writes, close its connections and the index map (they
        reopen on the next read)."""
        self._mine()
        self._cache.flush()
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.close()
        ix, self._ix = self._ix, None
        if ix is not None:
            ix.close()

    # -- samples ---------------------------------------------------------------------------------
    def sample(self, i: int, data: bytes) -> Sample:
        ix = self.index
        return Sample(self.transform(data) if self.transform is not None else data, ix.label(i), ix.path(i))

    def load(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The bytes of these samples: from the cache, else from the remote with the fewest
        ranged GETs (neighbours in a pack coalesced), each chunk verified, then kept in the cache."""
        ix = self.index
        out: dict[int, bytes] = {}
        wants: dict[int, Any] = {}
        for i in ids:
            where = ix.where(i)
            if where.size == 0:
                out[i] = b""
                continue
            got = self._from_extent(i, where) if len(where.chunks) == 1 else None  # in a kept span
            if got is None:
                got = self._cache.get(where.digest)  # kept alone
            if got is not None:
                out[i] = got
            else:
                wants[i] = where
        if wants and self._spans_fit():
            out.update(self._by_span(wants))
            wants = {i: w for i, w in wants.items() if i not in out}
        if wants:
            try:
                out.update(self._read_remote(wants))
            except (IntegrityError, ObjectNotFound, MissingDataError):
                out.update(self._read_again(list(wants)))
        return out

    def _spans_fit(self) -> bool:
        """Whether the cache can keep every span of the dataset: then a random read fetches
        the whole span of what it wants (each span crosses the network once an epoch, in one
        sequential GET, and the rest of it is read from the cache); else it fetches just the
        samples (a smaller cache would evict spans before their other samples were asked for)."""
        if self._fit is None or self._fit[0] != os.getpid():
            ix = self.index
            total = sum(e[2] - e[1] for e in (ix.extent(s) for s in range(ix.nspans)) if e is not None)
            self._fit = (os.getpid(), self.cache_limit is None or total <= self.cache_limit * EVICT_TO)
        return self._fit[1]

    def _by_span(self, wants: dict[int, Any]) -> dict[int, bytes]:
        """Samples of one chunk read with their whole span, one span at a time; a span another
        process is fetching is waited for, then read from the cache."""
        ix = self.index
        spans: dict[int, list[int]] = {}
        for i, w in wants.items():
            if len(w.chunks) == 1:
                spans.setdefault(ix.span_of(i), []).append(i)
        out: dict[int, bytes] = {}
        for s, ids in sorted(spans.items()):
            ext = ix.extent(s)
            if ext is None:
                continue
            with self._cache.claim(extent_key(*ext)):
                got = {i: self._from_extent(i, wants[i]) for i in ids}
                if all(v is not None for v in got.values()):
                    out.update({i: v for i, v in got.items() if v is not None})
                    continue
                out.update(self.load_span(s, ids, keep=self._cache.put_now))
        return out

    def _from_extent(self, i: int, where: Any) -> bytes | None:
        """A sample out of its span's extent in the cache (a streaming epoch kept it), verified."""
        ix = self.index
        ext = ix.extent(ix.span_of(i))
        if ext is None:
            return None
        _, pack, off, n = where.chunks[0]
        if ext[0] != pack:
            return None
        data = self._cache.read_range(extent_key(*ext), off - ext[1], n)
        return data if data is not None and matches(data, where.digest) else None

    def _read_remote(self, wants: dict[int, Any]) -> dict[int, bytes]:
        located = {d: Location(pack, off, n) for w in wants.values() for d, pack, off, n in w.chunks}
        found = self.proc.packs.read_chunks(list(located.items()), SPAN_BYTES)  # coalesced, verified
        out = {}
        for i, w in wants.items():
            if len(w.chunks) == 1:
                data = found[w.chunks[0][0]]
            else:
                data = b"".join(found[d] for d, _, _, _ in w.chunks)
                if not file_matches(data, w.digest):
                    raise IntegrityError(f"{self.index.path(i)}: assembled from verified chunks, it does not match "
                                         f"its digest {w.digest.hex()}")
            self._cache.put(w.digest, data)
            out[i] = bytes(data)
        return out

    def load_span(self, s: int, ids: Sequence[int], keep: Callable[[bytes, bytes], None] | None = None
                  ) -> dict[int, bytes]:
        """The bytes of samples `ids` of span s, read with the whole span: its extent from the
        cache, else one ranged GET of it (each sample taken verified), kept whole in the
        cache for the next epoch (`keep`: how; by default written behind)."""
        ix = self.index
        ext = ix.extent(s)
        if ext is None:  # a span of its own: a file of several chunks, or empty
            return self.load(ids)
        pack, start, end = ext
        first, count = ix.span(s)
        rows = [(i, ix.row(i)) for i in (ix.ordered(first + k) for k in range(count))]
        key = extent_key(pack, start, end)
        body = self._cache.read(key)
        if body is not None:
            got = _cut(body, start, rows, ids)
            if got is not None:
                return got
            self._cache.drop(key)  # damaged on disk: read it again
        try:
            body = self.proc.packs.read([(pack, start, end)])[0]
        except (ObjectNotFound, MissingDataError):
            return self._read_again(list(ids))
        got = _cut(body, start, rows, ids)
        if got is None:
            return self._read_again(list(ids))
        (keep or self._cache.put)(key, body)
        return got

    def _read_again(self, ids: list[int]) -> dict[int, bytes]:
        """The index pointed at bytes the remote no longer has there (a remote gc repacked them, a
        producer's push repaired a damaged pack) or they did not verify: read these samples through
        a registry reader at the same commit, which asks the remote afresh. What is still damaged
        raises; once this worked, the cached index is stale and the next dataset builds it again."""
        from fastreg.registry.kinds import open_reader

        ix = self.index
        paths = {i: ix.path(i) for i in ids}
        try:
            with open_reader(self.repo, self.commit, jobs=self._jobs) as reader:
                got = reader.read_whole([reader.locate(p) for p in paths.values()])
        except (MissingDataError, ObjectNotFound) as exc:
            raise MissingObjectError(f"{', '.join(sorted(paths.values())[:3])}: {exc.message}") from None
        out = {}
        for i, p in paths.items():
            data = got[p]
            if not file_matches(data, ix.row(i)[0]):
                raise IntegrityError(f"{p}: the registry's file at {self.commit[:10]} is not the indexed one")
            self._cache.put(ix.row(i)[0], data)
            out[i] = data
        self.index_path.unlink(missing_ok=True)
        return out


class RegistryDataset(_RegistryData, _MapBase):  # type: ignore[misc,valid-type]
    """A registry folder at a revision as a map-style dataset: ds[i] is the i-th file in sorted
    path order, as a Sample. With a DataLoader, a whole batch is read at once (__getitems__)."""

    def __init__(self, repo: str, path: str, rev: str | None = None, *, transform: Callable[[bytes], Any] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, cache_limit: int | None = None,
                 jobs: int | None = None) -> None:
        _RegistryData.__init__(self, repo, path, rev, transform=transform, cache_dir=cache_dir,
                               cache_limit=cache_limit, jobs=jobs)

    def __getitem__(self, i: int) -> Sample:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        n = len(self)
        ids = []
        for i in indices:
            j = int(i)
            if j < 0:
                j += n
            if not 0 <= j < n:
                raise IndexError(f"sample {i} of {n}")
            ids.append(j)
        data = self.load(ids)
        return [self.sample(j, data[j]) for j in ids]


class RegistryIterableDataset(_RegistryData, _IterBase):  # type: ignore[misc,valid-type]
    """A registry folder at a revision, streamed: whole spans of packs read with sequential
    ranged GETs in a shuffled order, samples through a shuffle buffer, split across DataLoader
    workers and ranks. Deterministic for (seed, epoch); resumable mid-epoch (state_dict)."""

    def __init__(self, repo: str, path: str, rev: str | None = None, *, seed: int = 0, shuffle_buffer: int = 1000,
                 rank: int | None = None, world_size: int | None = None, worker: int | None = None,
                 num_workers: int | None = None, transform: Callable[[bytes], Any] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, cache_limit: int | None = None,
                 jobs: int | None = None) -> None:
        if shuffle_buffer < 0:
            raise ValueError("shuffle_buffer must be >= 0")
        _RegistryData.__init__(self, repo, path, rev, transform=transform, cache_dir=cache_dir,
                               cache_limit=cache_limit, jobs=jobs)
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.rank, self.world_size, self.worker, self.num_workers = rank, world_size, worker, num_workers
        self.epoch = 0
        self._resume: tuple[int, int, int] | None = None  # (epoch, consumed, batch_size)
        self._yielded = 0
        self._topology()  # bad rank or worker numbers fail here, not in a worker

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (its order depends on it); a resume state loaded
        for another epoch is dropped."""
        self.epoch = epoch
        if self._resume is not None and self._resume[0] != epoch:
            self._resume = None

    def _topology(self) -> tuple[int, int, int, int]:
        """(worker, num_workers, rank, world_size) for this process."""
        worker, num = self.worker, self.num_workers
        if worker is None or num is None:
            info = None
            if "torch.utils.data" in sys.modules:
                info = sys.modules["torch.utils.data"].get_worker_info()
            worker, num = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self.rank, self.world_size
        if rank is None:
            rank = int(os.environ.get("RANK", "0"))
        if world is None:
            world = int(os.environ.get("WORLD_SIZE", "1"))
        if not (num >= 1 and 0 <= worker < num):
            raise ValueError(f"worker {worker} of num_workers {num}: give 0 <= worker < num_workers")
        if not (world >= 1 and 0 <= rank < world):
            raise ValueError(f"rank {rank} of world_size {world}: give 0 <= rank < world_size")
        return worker, num, rank, world

    def shard_sizes(self) -> list[int]:
        """The samples each worker of this rank yields in an epoch."""
        _, num, rank, world = self._topology()
        n, shards = len(self), num * world
        return [n * (s + 1) // shards - n * s // shards for s in range(rank * num, (rank + 1) * num)]

    def plan(self) -> tuple[list[order.Piece], array[int], int]:
        """This process's share of the epoch: the span pieces it reads, the samples in the order it
        yields them, and how many of those a loaded state says were yielded already."""
        ix = self.index
        worker, num, rank, world = self._topology()
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            # a DataLoader starts its turns at worker 0 again: worker k plays the part of the
            # worker whose turn it was, and on from there, so the rest comes in the same order
            _, consumed, batch = self._resume
            taken, turn = order.worker_taken(consumed, batch, self.shard_sizes())
            worker = (worker + turn) % num
            skip = taken[worker]
        shard = rank * num + worker
        pieces, out = order.epoch_plan(ix, self.seed, self.epoch, shard, num * world, self.shuffle_buffer)
        return pieces, out, skip

    def __iter__(self) -> Iterator[Sample]:
        ix = self.index
        pieces, out, skip = self.plan()
        todo = out[skip:]
        need = set(todo) if skip else None
        jobs: collections.deque[tuple[int, list[int]]] = collections.deque()
        for p in pieces:
            first = ix.span(p.span)[0]
            ids = [ix.ordered(first + k) for k in range(p.start, p.stop)]
            if need is not None:
                ids = [i for i in ids if i in need]
            if ids:
                jobs.append((p.span, ids))
        self._yielded = skip
        proc = self.proc
        running: collections.deque[Future[dict[int, bytes]]] = collections.deque()
        data: dict[int, bytes] = {}

        def feed() -> None:
            while jobs and len(running) < PREFETCH:
                running.append(proc.pool.submit(self.load_span, *jobs.popleft()))

        feed()
        try:
            for i in todo:
                while i not in data:
                    if not running:
                        raise AssertionError(f"sample {i} was never read")  # a planning bug, never data
                    data.update(running.popleft().result())
                    feed()
                self._yielded += 1
                yield self.sample(i, data.pop(i))
        finally:
            for f in running:
                f.cancel()
        self._cache.flush()  # the epoch's reads are in the cache before the next one starts
        if self._resume is not None and self._resume[0] == self.epoch:
            self._resume = None

    def state_dict(self, consumed: int | None = None, batch_size: int = 1) -> dict[str, int]:
        """Where the epoch is: give `consumed`, the samples this rank's training loop took from
        its DataLoader this epoch, and the loader's batch_size (with DataLoader workers, only the
        loop knows); iterated in this process, it is what this object yielded."""
        return {"version": 1, "seed": self.seed, "epoch": self.epoch,
                "consumed": self._yielded if consumed is None else consumed, "batch_size": batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration of state's epoch yields exactly the samples not yet
        yielded, in the order they would have come."""
        if state.get("version") != 1:
            raise ValueError("not a RegistryIterableDataset state (version 1)")
        if state["seed"] != self.seed:
            raise ValueError(f"the state is of seed {state['seed']}, this dataset's is {self.seed}")
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state["consumed"]), int(state["batch_size"]))


def _cut(body: bytes, start: int, rows: list[tuple[int, tuple[bytes, int, int, int, int, int]]],
         ids: Sequence[int]) -> dict[int, bytes] | None:
    """The samples `ids` out of a span's bytes (from pack offset `start`), when each of them
    matches its digest; None when one does not (or the bytes are short). Only those are checked:
    a span is cut once per piece of an epoch's plan, and each sample is checked when it is
    taken (SHA-256 costs ~0.5 s a GB: checking the whole span for every piece multiplied it)."""
    want = set(ids)
    out = {}
    for i, (digest, _, _, _, off, n) in rows:
        if i not in want:
            continue
        data = body[off - start : off - start + n]
        if not verified(data, digest, n):
            return None
        out[i] = data
    return out

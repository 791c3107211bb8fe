"""Is a remote whole? Check that everything a set of roots needs is there and intact.

Structure (cheap: listings, index segments and tree nodes):
- every index segment decodes and matches its name; the pack it names exists, is as long as the
  segment says, and holds every entry inside its bytes;
- every tree node under the roots exists (and matches its digest when read); every single-file
  target that needs a file record has one;
- every chunk of every file is named by a committed index segment.
Data (`read`): packs are downloaded (all, or a random subset), each checked against its name
and every chunk against its digest; memory is `jobs` packs at most.

Problems name the object and the first tracked files they break. Damaged packs are reported
with the chunks that cannot be read from them (all of a missing pack; those past the end of a
truncated one; those that fail their digest), which is what a later push needs to put them back.
Memory: the chunk index of the remote as one sorted blob (28 bytes per chunk, as the index
mirror), plus the problems; files are streamed from the trees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from fastreg.chunking import WHOLE_FILE_LIMIT, iter_chunks
from fastreg.errors import DecodeError, ObjectNotFound, StorageError
from fastreg.objects import codec, tree
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import matches
from fastreg.objects.tree import FileRecord
from fastreg.storage.base import Store
from fastreg.transfer import layout
from fastreg.transfer.index import RemoteIndex
from fastreg.transfer.local_objects import LocalObjects

AFFECTED_SHOWN = 3  # tracked files named per problem
DAMAGE_VERSION = 1


@dataclass(frozen=True, slots=True)
class CheckRoot:
    """A target to check: its tracked path (for messages), kind, digest and size."""

    path: str
    root: packfmt.Root


@dataclass(slots=True)
class Problem:
    kind: str  # missing-pack, truncated-pack, damaged-pack, bad-entry, missing-segment (never), damaged-segment,
    #            missing-tree, damaged-tree, missing-record, missing-chunk
    key: str  # the remote object
    detail: str
    affects: list[str] = field(default_factory=list)  # the first tracked files it breaks
    affected: int = 0  # how many files it breaks in all
    pack: bytes | None = None  # a pack whose chunks cannot all be read
    bad_chunks: set[bytes] = field(default_factory=set)  # which (empty with pack set: all of them)

    def hit(self, path: str) -> None:
        self.affected += 1
        if len(self.affects) < AFFECTED_SHOWN:
            self.affects.append(path)


@dataclass(slots=True)
class CheckReport:
    packs: int = 0
    segments: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    def to_json(self, remote: str) -> dict[str, object]:
        return {"remote": remote, "packs": self.packs, "segments": self.segments, "trees": self.trees,
                "files": self.files, "chunks": self.chunks, "packs_read": self.packs_read,
                "bytes_read": self.bytes_read, **problems_json(self.problems)}

    def damaged_packs(self) -> dict[bytes, set[bytes] | None]:
        """pack -> the chunks that cannot be read from it (None: none can)."""
        out: dict[bytes, set[bytes] | None] = {}
        for p in self.problems:
            if p.pack is None:
                continue
            if not p.bad_chunks or out.get(p.pack, set()) is None:
                out[p.pack] = None
            else:
                current = out.setdefault(p.pack, set())
                assert current is not None
                current.update(p.bad_chunks)
        return out


def problems_json(problems: list[Problem]) -> dict[str, object]:
    return {"clean": not problems, "problems": [
        {"kind": p.kind, "object": p.key, "detail": p.detail, "affects": p.affects, "affected": p.affected}
        for p in problems]}


def choose_packs(packs: list[bytes], subset: float | int | None, seed: int | None = None) -> list[bytes]:
    """All packs (subset None or 1.0), a fraction (0 < subset < 1) or a count (an int)."""
    if subset is None:
        return list(packs)
    rng = random.Random(seed)
    if isinstance(subset, float):
        n = min(len(packs), max(1, round(len(packs) * subset))) if packs else 0
    else:
        n = min(len(packs), subset)
    return rng.sample(packs, n)


class _Trees:
    """Tree nodes for the walk: from the local cache when it has them (verified when stored),
    else from the remote (verified here); what is missing or damaged becomes a problem."""

    def __init__(self, store: Store, cache: LocalObjects, listed: set[bytes] | None, report: CheckReport) -> None:
        self.store = store
        self.cache = cache
        self.listed = listed
        self.report = report

    async def node(self, digest: bytes, path: str) -> bytes | None:
        key = layout.tree_key(digest)
        self.report.trees += 1
        cached = await asyncio.to_thread(self.cache.tree_path(digest).exists)
        if self.listed is not None:
            here = digest in self.listed
        elif cached:
            here = await self.store.exists(key)  # a remote that cannot be listed: one HEAD
        else:
            here = True  # the GET below tells
        data = None
        if here and cached:
            data = await asyncio.to_thread(self.cache.get_tree, digest)
        elif here:
            try:
                data = await self.store.get(key)
            except ObjectNotFound:
                here = False
        if not here or data is None:
            self._problem("missing-tree", key, f"tree node missing: the folder {path or '/'} cannot be read", path)
            return None
        if not cached:
            if not matches(data, digest):
                self._problem("damaged-tree", key, f"tree node does not match its digest: {path or '/'}", path)
                return None
            await asyncio.to_thread(self.cache.put_tree, data, len(digest))
        return data

    def _problem(self, kind: str, key: str, detail: str, path: str) -> None:
        self.report.problems.append(Problem(kind, self.store.where(key), detail, [path], 1))


class _NodeStore:
    """A TreeStore over nodes already fetched (tree.walk is synchronous)."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_tree(self, digest: bytes) -> bytes:
        return self.nodes[digest]

    def put_tree(self, data: bytes, digest_size: int = 0) -> bytes:
        raise NotImplementedError


async def _walk(trees: _Trees, digest: bytes, prefix: str) -> AsyncIterator[tuple[str, FileRecord]]:
    """Files under a tree, one directory (and its shards) in memory at a time; a node that is
    missing or damaged is reported once and its subtree skipped."""
    data = await trees.node(digest, prefix.rstrip("/"))
    if data is None:
        return
    local = _NodeStore()
    local.nodes[digest] = data
    try:
        for shard in tree.shards_of(data, digest):
            shard_data = await trees.node(shard, prefix.rstrip("/"))
            if shard_data is None:
                return
            local.nodes[shard] = shard_data
        entries = list(tree.iter_dir(local, digest))
    except DecodeError as exc:
        trees.report.problems.append(Problem("damaged-tree", trees.store.where(layout.tree_key(digest)), str(exc),
                                             [prefix.rstrip("/")], 1))
        return
    for name, rec in entries:
        if isinstance(rec, tree.DirRecord):
            async for item in _walk(trees, rec.digest, f"{prefix}{name}/"):
                yield item
        else:
            yield prefix + name, rec


async def check(store: Store, cache: LocalObjects, index_path: Path, roots: list[CheckRoot],
                read: float | int | bool | None, jobs: int) -> CheckReport:
    """read: False (structure only), True (every pack), a fraction or a count of packs."""
    c = _Checker(store, cache, index_path, jobs)
    names = await c.listing(roots)
    await c.segments(names)
    if read is not False:
        await c.read_packs(None if read is True else read)
    await c.files(roots)
    return c.finish()


class _Checker:
    """The stages of one check, sharing what the listing, the segments and the packs found."""

    def __init__(self, store: Store, cache: LocalObjects, index_path: Path, jobs: int) -> None:
        self.store = store
        self.cache = cache
        self.jobs = max(1, jobs)
        self.report = CheckReport()
        self.index = RemoteIndex(index_path, store.url)  # in memory only: never saved
        self.listed_trees: set[bytes] | None = None  # None: the remote cannot be listed
        self.listed_records: set[bytes] | None = None
        self.pack_sizes: dict[bytes, int] | None = None
        self.loaded: list[tuple[str, packfmt.IndexSegment]] = []
        self.bad: dict[bytes, Problem] = {}  # pack -> what is wrong with it
        self.missing: set[bytes] = set()  # chunks no segment names
        self.missing_problem = Problem("missing-chunk", "", "")

    async def listing(self, roots: list[CheckRoot]) -> list[str]:
        """The index segments to load: all of a listable remote, else those the roots' hints name."""
        store = self.store
        if not store.can_list:
            names: set[str] = set()
            for r in roots:
                key = layout.roots_key(r.root.digest)
                try:
                    names.update(packfmt.decode_roots(await store.get(key), store.where(key)))
                except ObjectNotFound:
                    continue
            return sorted(names)
        packs_l, index_l, trees_l, records_l = await asyncio.gather(
            store.list(layout.PACKS), store.list(layout.INDEX), store.list(layout.TREES), store.list(layout.RECORDS))
        self.pack_sizes = {d: o.size for o in packs_l if (d := layout.digest_of_key(o.key)) is not None}
        self.listed_trees = {d for o in trees_l if (d := layout.digest_of_key(o.key)) is not None}
        self.listed_records = {d for o in records_l if (d := layout.digest_of_key(o.key)) is not None}
        self.report.packs = len(self.pack_sizes)
        return [o.key[len(layout.INDEX):] for o in index_l]

    async def segments(self, names: list[str]) -> None:
        """Each segment decodes, matches its name, and fits the pack it names."""
        sem = asyncio.Semaphore(self.jobs)

        async def load(name: str) -> tuple[str, packfmt.IndexSegment] | None:
            key = layout.index_key(name)
            async with sem:
                try:
                    data = await self.store.get(key)
                except ObjectNotFound:
                    self.report.problems.append(Problem("missing-segment", self.store.where(key),
                                                        "index segment missing"))
                    return None
            try:
                return name, packfmt.decode_segment(data, name)
            except DecodeError as exc:
                self.report.problems.append(Problem("damaged-segment", self.store.where(key),
                                                    f"{exc}; the chunks of its pack are unknown to readers"))
                return None

        self.loaded = [s for s in await asyncio.gather(*(load(n) for n in names)) if s is not None]
        self.report.segments = len(self.loaded)
        for name, seg in self.loaded:
            problem = self._pack_problem(name, seg)
            if problem is not None:
                self.bad[seg.pack] = problem
        self.index.merge(self.loaded)

    def _pack_problem(self, name: str, seg: packfmt.IndexSegment) -> Problem | None:
        where = self.store.where(layout.pack_key(seg.pack))
        entries = seg.items()
        actual = self.pack_sizes.get(seg.pack) if self.pack_sizes is not None else None
        if self.pack_sizes is not None and actual is None:
            return Problem("missing-pack", where, f"pack missing ({len(entries)} chunks, named by index/{name})",
                           pack=seg.pack)
        if actual is not None and actual < seg.pack_size:
            cut = {d for d, off, ln in entries if off + ln > actual}
            return Problem("truncated-pack", where, f"pack is {actual} bytes, its index says {seg.pack_size}: "
                           f"{len(cut)} of {len(entries)} chunks cannot be read", pack=seg.pack,
                           bad_chunks=cut or {d for d, _, _ in entries})
        cut = {d for d, off, ln in entries if off + ln > seg.pack_size}
        if cut:
            return Problem("bad-entry", self.store.where(layout.index_key(name)),
                           f"{len(cut)} index entries lie past the end of their pack", pack=seg.pack, bad_chunks=cut)
        return None

    async def read_packs(self, subset: float | int | None) -> None:
        """Download packs (all, or a random subset) and verify each chunk; `jobs` (at most 4)
        packs in memory at once."""
        readable = sorted({seg.pack for _, seg in self.loaded
                           if seg.pack not in self.bad or self.bad[seg.pack].bad_chunks})
        by_pack = {seg.pack: seg for _, seg in self.loaded}
        sem = asyncio.Semaphore(min(self.jobs, 4))

        async def verify(pack: bytes) -> None:
            seg = by_pack[pack]
            key = layout.pack_key(pack)
            where = self.store.where(key)
            async with sem:
                try:
                    data = await self.store.get(key)
                except ObjectNotFound:
                    self.bad[pack] = Problem("missing-pack", where, "pack missing", pack=pack)
                    return
                except StorageError as exc:
                    self.bad[pack] = Problem("damaged-pack", where, f"cannot be read: {exc.message}", pack=pack)
                    return
                self.report.bytes_read += len(data)
                self.report.packs_read += 1
                if matches(data, pack):
                    return
                wrong = {d for d, off, ln in seg.items()
                         if off + ln > len(data) or not matches(data[off : off + ln], d)}
                if not wrong:
                    return  # damage outside every indexed chunk (a repaired pack): nothing a reader can reach
                self.bad[pack] = Problem("damaged-pack", where, f"content does not match its name: {len(wrong)} of "
                                         f"{len(seg.items())} chunks damaged", pack=pack, bad_chunks=wrong)

        await asyncio.gather(*(verify(p) for p in choose_packs(readable, subset)))

    async def files(self, roots: list[CheckRoot]) -> None:
        """Every file of every root: its chunks named by the index, in a pack that is whole."""
        trees = _Trees(self.store, self.cache, self.listed_trees, self.report)
        for r in roots:
            if r.root.kind == "dir":
                async for path, rec in _walk(trees, r.root.digest, r.path + "/"):
                    self._file(path, rec)
            else:
                single = await self._single(r)
                if single is not None:
                    self._file(r.path, single)

    async def _single(self, r: CheckRoot) -> FileRecord | None:
        """A single-file target's record: its chunks come from the remote's file record when
        it is larger than one chunk."""
        if r.root.size <= WHOLE_FILE_LIMIT:
            return FileRecord(r.root.size, r.root.digest, b"")
        key = layout.record_key(r.root.digest)
        where = self.store.where(key)
        data = None
        if self.listed_records is None or r.root.digest in self.listed_records:
            try:
                data = await self.store.get(key)
            except ObjectNotFound:
                data = None
        if data is None:
            self.report.problems.append(Problem("missing-record", where, "file record missing: the file's chunks "
                                                "are unknown", [r.path], 1))
            return None
        try:
            size, chunks = packfmt.decode_record(data, where)
        except DecodeError as exc:
            self.report.problems.append(Problem("damaged-record", where, str(exc), [r.path], 1))
            return None
        return FileRecord(size, r.root.digest, chunks)

    def _file(self, path: str, rec: FileRecord) -> None:
        self.report.files += 1
        hit: set[int] = set()
        for digest, _ in iter_chunks(rec.chunks, rec.digest, rec.size):
            self.report.chunks += 1
            loc = self.index.find(digest)
            if loc is None:
                self.missing.add(digest)
                problem = self.missing_problem
            elif loc.pack in self.bad and (not self.bad[loc.pack].bad_chunks
                                           or digest in self.bad[loc.pack].bad_chunks):
                problem = self.bad[loc.pack]
            else:
                continue
            if id(problem) not in hit:
                hit.add(id(problem))
                problem.hit(path)

    def finish(self) -> CheckReport:
        self.report.problems += list(self.bad.values())
        if self.missing:
            # One problem for them all: typically one index segment is gone (its pack, if still
            # there, is an orphan that no reader finds).
            named = {pack for _, seg in self.loaded for pack in (seg.pack,)}
            orphans = sorted(p for p in (self.pack_sizes or {}) if p not in named)
            p = self.missing_problem
            p.key = self.store.where(layout.INDEX)
            p.detail = (f"{len(self.missing)} chunks are named by no index segment (first "
                        f"{min(self.missing).hex()})" + (f"; packs without a segment: {len(orphans)} (first "
                                                         f"{orphans[0].hex()})" if orphans else ""))
            self.report.problems.append(p)
        self.report.problems.sort(key=lambda p: (p.kind, p.key))
        return self.report


async def _chain(walk: AsyncIterator[tuple[str, FileRecord]] | None,
                 items: list[tuple[str, FileRecord]]) -> AsyncIterator[tuple[str, FileRecord]]:
    if walk is not None:
        async for item in walk:
            yield item
    for item in items:
        yield item




# -- the record a push repairs from (beside the remote's index mirror) --------------------------
def _damage_path(mirror_path: Path) -> Path:
    return mirror_path.with_name("damaged")


async def damaged_chunks(store: Store, mirror: RemoteIndex, damaged: dict[bytes, set[bytes] | None]) -> set[bytes]:
    """Every chunk that cannot be read from the damaged packs (all of a pack marked None)."""
    out: set[bytes] = set()
    for pack, bad in damaged.items():
        if bad is not None:
            out |= bad
            continue
        seg = await segment_of(store, mirror, pack)
        if seg is not None:
            out.update(d for d, _, _ in seg[1].items())
    return out


async def segment_of(store: Store, mirror: RemoteIndex, pack: bytes) -> tuple[str, packfmt.IndexSegment] | None:
    """The index segment that names a pack (its name and entries), if the mirror knows one and it
    can be read."""
    if not mirror.knows_pack(pack):
        return None
    name = mirror.segment_of(pack)
    try:
        return name, packfmt.decode_segment(await store.get(layout.index_key(name)), name)
    except (ObjectNotFound, DecodeError):
        return None


def record_damage(mirror_path: Path, damaged: dict[bytes, set[bytes] | None]) -> None:
    """Add to what earlier checks found (a pack stays damaged until a push repairs it)."""
    merged = load_damage(mirror_path)
    for pack, bad in damaged.items():
        if bad is None or merged.get(pack, set()) is None:
            merged[pack] = None
        else:
            current = merged.setdefault(pack, set())
            assert current is not None
            current.update(bad)
    path = _damage_path(mirror_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [[pack, None if bad is None else sorted(bad)] for pack, bad in sorted(merged.items())]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(codec.packb(["fastreg.damaged", DAMAGE_VERSION, body]))
    os.replace(tmp, path)


def load_damage(mirror_path: Path) -> dict[bytes, set[bytes] | None]:
    try:
        v = codec.unpackb(_damage_path(mirror_path).read_bytes())
        if not (isinstance(v, list) and len(v) == 3 and v[0] == "fastreg.damaged" and v[1] == DAMAGE_VERSION):
            return {}
        return {bytes(pack): None if bad is None else {bytes(d) for d in bad} for pack, bad in v[2]}
    except (FileNotFoundError, DecodeError, TypeError, ValueError):
        return {}


def damage_recorded(mirror_path: Path) -> bool:
    """A check found problems there that no push has repaired yet: tree nodes do not certify
    their subtrees until one has looked at every file again (a segment may be gone)."""
    return _damage_path(mirror_path).exists()


def clear_damage(mirror_path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _damage_path(mirror_path).unlink()

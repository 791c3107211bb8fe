"""What a push of some targets sends, and what `status --remote` says it would send: one rule for
"what the remote lacks", from the remote's view (transfer/view.py) and the local cache.

A target is a tree (with an optional folder or file inside it) or a single file. Subtrees the
remote holds whole (certified tree nodes) are left out of everything: the files to pack, the tree
nodes to write and the node hints, so a push with nothing new walks no file. Files are streamed
from the trees, never listed: a push walks them once to check that everything it needs is here
(or on the remote) and to size the progress bar, once more to pack them, and the nodes that hold
files once for their hints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from fastreg.chunking import iter_chunks
from fastreg.errors import (
    DecodeError,
    FastregError,
    IntegrityError,
    MissingDataError,
    MissingPathError,
    ObjectNotFound,
)
from fastreg.objects import tree
from fastreg.objects.tree import FileRecord
from fastreg.transfer import metadata
from fastreg.transfer.local_objects import LocalObjects
from fastreg.transfer.view import RemoteView

FileSource = Callable[[], Iterable[FileRecord]]


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One selected target. `record`: a single file's record with its chunk list when the local
    cache has the file (None: the remote's record is read instead)."""

    name: str  # the target's path in the project, for messages
    kind: Literal["dir", "file"]
    digest: bytes
    size: int
    subpath: str | None = None  # a folder or file inside a tree: only it
    record: FileRecord | None = None
    files: int = 1  # in the whole target


def under(path: str, subpath: str | None) -> bool:
    return subpath is None or path == subpath or path.startswith(subpath + "/")


@dataclass(frozen=True, slots=True)
class Unpushable:
    """A target a push left out: data it needs is neither in the local cache nor on the remote."""

    name: str
    digest: bytes
    detail: str


@dataclass(slots=True)
class PushWork:
    """What a push uploads. `sources` and each of `roots` are sources: called, they walk the
    files again, so the push holds no list of files. A file whose chunks are all on the remote is
    never read; any other must be in the local cache. `trees`: the tree nodes to write, by depth
    (tree.levels_pruned), the root level first. `records`: chunk lists of single-file targets.
    `roots`: every file of each target, for its locator hint (None: walking it would cross
    certified subtrees, so the hint names every segment instead). `dirs`: the trees selected.
    `node_files`: (tree, node, its files) of every node of them that holds files, outside
    certified subtrees, for the nodes' hints; the hint of a tree in `whole_trees` is the union
    of its nodes' (so one walk makes both). `estimate`: bytes of the files with a chunk the
    remote lacks (the progress bar's total)."""

    sources: list[FileSource] = field(default_factory=list)
    trees: list[list[bytes]] = field(default_factory=list)
    records: list[FileRecord] = field(default_factory=list)
    roots: dict[bytes, FileSource | None] = field(default_factory=dict)
    certified: set[bytes] = field(default_factory=set)
    dirs: list[bytes] = field(default_factory=list)
    estimate: int = 0
    node_files: Callable[[], Iterable[tuple[bytes, bytes, Iterable[FileRecord]]]] = lambda: ()
    whole_trees: set[bytes] = field(default_factory=set)

    failed: list[Unpushable] = field(default_factory=list)  # targets left out: their data is nowhere here

    def files(self) -> Iterator[FileRecord]:
        for source in self.sources:
            yield from source()

    def merge(self, part: PushWork) -> None:
        """Add one target's share (plan_target's) to the push."""
        self.sources += part.sources
        self.records += part.records
        self.roots.update(part.roots)
        self.certified |= part.certified
        self.whole_trees |= part.whole_trees
        for d in part.dirs:
            if d not in self.dirs:
                self.dirs.append(d)
        self.add_levels(part.trees)

    def add_levels(self, levels: list[list[bytes]]) -> None:
        seen = {d for level in self.trees for d in level}
        for depth, level in enumerate(levels):
            if depth == len(self.trees):
                self.trees.append([])
            self.trees[depth] += [d for d in level if d not in seen]


def _constant(rec: FileRecord) -> FileSource:
    return lambda: (rec,)


async def _record_of(view: RemoteView, t: PushTarget) -> FileRecord:
    if t.record is not None:
        return t.record
    return await metadata.fetch_record(view.store, t.digest, t.size)


async def _have_trees(view: RemoteView, cache: LocalObjects, t: PushTarget) -> None:
    if not await asyncio.to_thread(cache.tree_path(t.digest).exists):
        try:
            await metadata.fetch_trees(view.store, cache, [t.digest])
        except (MissingDataError, ObjectNotFound, IntegrityError, DecodeError):
            raise MissingDataError(f"{t.name}: its data is neither in the local cache nor on the remote; "
                                   "nothing to push from here") from None


def _add_tree(work: PushWork, cache: LocalObjects, digest: bytes, certified: set[bytes]) -> None:
    """A tree whose nodes (but the certified ones) are written, deepest first, and hinted."""
    if digest not in work.dirs:
        work.dirs.append(digest)
        work.certified |= certified
        work.add_levels(tree.levels_pruned(cache, digest, certified))


def _walker(cache: LocalObjects, digest: bytes, subpath: str | None, skip: set[bytes]) -> FileSource:
    return lambda: (rec for path, rec in tree.walk_pruned(cache, digest, skip) if under(path, subpath))


async def _plan_target(view: RemoteView, cache: LocalObjects, t: PushTarget) -> tuple[PushWork, FileSource]:
    """One target's share of a push, and the source of its files (for the check that they are
    all here or on the remote)."""
    part = PushWork()
    if t.kind == "file":
        rec = await _record_of(view, t)
        if t.record is not None and rec.chunks:
            part.records.append(rec)
        source: FileSource = _constant(rec)
        part.roots[t.digest] = source
    elif t.subpath is None:
        await _have_trees(view, cache, t)
        certified = await view.certified(cache, t.digest)
        _add_tree(part, cache, t.digest, certified)
        # The target's hint: the union of its nodes' hints (one walk for both), or every
        # segment when certified subtrees are left out of the walk.
        part.roots[t.digest] = None if certified else _walker(cache, t.digest, None, certified)
        if not certified:
            part.whole_trees.add(t.digest)
        source = _walker(cache, t.digest, None, certified)
    else:
        # A folder or file inside a tree: only its part moves. The nodes above it are not
        # written (each would certify a subtree the remote does not hold whole) and the
        # target gets no hint: the push of all of it writes them.
        await _have_trees(view, cache, t)
        found = await asyncio.to_thread(tree.lookup, cache, t.digest, t.subpath)
        if found is None:
            raise MissingPathError(f"{t.name}/{t.subpath}: not in the tracked directory {t.name}")
        if isinstance(found, FileRecord):
            source = _constant(found)
        else:
            certified = await view.certified(cache, found.digest)
            _add_tree(part, cache, found.digest, certified)
            source = _walker(cache, found.digest, None, certified)
    part.sources.append(source)
    return part, source


async def plan_push(view: RemoteView, cache: LocalObjects, targets: list[PushTarget]) -> PushWork:
    """What to push. Data that is not in the local cache is fine when the remote has it already
    (a clone that never pulled everything). A target with data that is neither here nor on the
    remote (a tree node or files) is left out whole, with what it lacks in `work.failed`: the
    other targets still go (one broken dataset blocks no other). Each target's files are checked
    by one streaming pass before anything is uploaded (the same pass sizes the upload)."""
    await view.current()  # first: a remote gc since the last push makes the mirror forget what it knew
    await view.distrust()
    await view.confirm_roots(t.digest for t in targets if t.kind == "dir" and t.subpath is None)
    work = PushWork()
    for t in targets:
        try:
            part, source = await _plan_target(view, cache, t)
        except MissingPathError:
            raise
        except (MissingDataError, DecodeError) as exc:
            work.failed.append(Unpushable(t.name, t.digest, exc.message.removeprefix(f"{t.name}: ")))
            continue
        first, nlacking, estimate = await asyncio.to_thread(_lacking, view, cache, source)
        if first is not None:
            many = nlacking != 1
            what = ("its data is" if t.kind == "file" else
                    f"{nlacking} file{'s' if many else ''} (first: {first}) {'are' if many else 'is'}")
            work.failed.append(Unpushable(t.name, t.digest, f"{what} neither in the local cache nor on the remote"))
            continue
        work.merge(part)
        work.estimate += estimate
    work.node_files = lambda: ((d, node, files) for d in work.dirs
                               for node, files in tree.file_nodes_pruned(cache, d, work.certified))
    return work


def _lacking(view: RemoteView, cache: LocalObjects, source: FileSource) -> tuple[str | None, int, int]:
    """(the digest of the first file neither here nor on the remote, how many, bytes to upload).
    In a thread."""
    first: str | None = None
    n = estimate = 0
    for rec in source():
        if view.has_file(rec):
            continue
        estimate += rec.size
        if not cache.has_file(rec.digest):
            n += 1
            if first is None:
                first = rec.digest.hex()
    return first, n, estimate


@dataclass(slots=True)
class Lacking:
    """What a push of one target would send: files with a chunk the remote lacks, and those
    chunks (each counted once: what the upload costs, not the size of the files)."""

    name: str
    missing_files: int = 0
    missing_bytes: int = 0  # of the missing chunks
    total_files: int = 0
    missing_chunks: int = 0
    missing_trees: int = 0  # tree nodes the remote lacks (a version whose files are all there still needs them)
    problem: str = ""  # why the target could not be looked at (data neither here nor on the remote)

    @property
    def behind(self) -> bool:
        return bool(self.missing_files or self.missing_trees or self.problem)

    def to_json(self) -> dict[str, object]:
        return {"path": self.name, "files": self.total_files, "missing_files": self.missing_files,
                "missing_chunks": self.missing_chunks, "missing_bytes": self.missing_bytes,
                "missing_trees": self.missing_trees, "problem": self.problem or None}


async def lacking(view: RemoteView, cache: LocalObjects, targets: list[PushTarget]) -> list[Lacking]:
    """status --remote: per target, what the remote lacks (the rule a push plans with)."""
    await view.check_format()
    await view.refresh([t.digest for t in targets])
    await view.distrust()
    out = []
    for t in targets:
        st = Lacking(t.name)
        try:
            await _lacking_one(view, cache, t, st)
        except MissingPathError:
            raise
        except (MissingDataError, DecodeError) as exc:  # one broken target hides no other's state
            st.problem = exc.message.removeprefix(f"{t.name}: ")
        out.append(st)
    return out


async def _lacking_one(view: RemoteView, cache: LocalObjects, t: PushTarget, st: Lacking) -> None:
    recs: Iterable[FileRecord]
    if t.kind == "file":
        recs = [await _record_of(view, t)]
        st.total_files = 1
    else:
        await _have_trees(view, cache, t)
        certified = await view.certified(cache, t.digest)
        found = tree.lookup(cache, t.digest, t.subpath) if t.subpath else None
        if t.subpath is not None and found is None:
            raise MissingPathError(f"{t.name}/{t.subpath}: not in the tracked directory {t.name}")
        st.total_files = t.files if t.subpath is None else found.files if isinstance(found, tree.DirRecord) else 1
        if t.subpath is None:
            known = view.mirror.trees
            st.missing_trees = sum(d not in known for level in
                                   await asyncio.to_thread(tree.levels_pruned, cache, t.digest, certified)
                                   for d in level)
        recs = _walker(cache, t.digest, t.subpath, certified)()
    await asyncio.to_thread(_count, view, recs, st)


def _count(view: RemoteView, recs: Iterable[FileRecord], st: Lacking) -> None:
    seen: set[bytes] = set()
    for r in recs:
        lacks = False
        for d, length in iter_chunks(r.chunks, r.digest, r.size):
            if view.has(d):
                continue
            lacks = True
            if d not in seen:
                seen.add(d)
                st.missing_chunks += 1
                st.missing_bytes += length
        st.missing_files += lacks


@dataclass(slots=True)
class Unpushed:
    """Objects of the local cache that some targets need and the remote lacks: what a local gc
    must keep, because this cache holds the only copy."""

    files: set[bytes] = field(default_factory=set)  # file digests (whole files in the cache)
    trees: set[bytes] = field(default_factory=set)  # tree nodes
    targets: list[str] = field(default_factory=list)  # names of the targets with something unpushed


async def unpushed(view: RemoteView, cache: LocalObjects, targets: list[PushTarget]) -> Unpushed:
    """Per target (whole targets only), the cache objects the remote does not hold. A tree node
    is on the remote for sure only inside a certified subtree: every other node of the target is
    counted as unpushed (nodes are small; a later push certifies them). A target whose tree is
    not in the cache has nothing here to protect."""
    await view.check_format()
    await view.current()
    await view.distrust()
    out = Unpushed()
    for t in targets:
        before = len(out.files) + len(out.trees)
        if t.kind == "file":
            if not await asyncio.to_thread(cache.has_file, t.digest):
                continue
            try:
                rec = await _record_of(view, t)
            except FastregError:
                rec = None  # a record the remote cannot give: the file is not there to read
            if rec is None or not view.has_file(rec):
                out.files.add(t.digest)
        elif await asyncio.to_thread(cache.tree_path(t.digest).exists):
            certified = await view.certified(cache, t.digest)

            def scan(t: PushTarget = t, certified: set[bytes] = certified) -> None:
                for level in tree.levels_pruned(cache, t.digest, certified):
                    out.trees.update(level)
                for _, rec in tree.walk_pruned(cache, t.digest, certified):
                    if rec.digest not in out.files and not view.has_file(rec) and cache.has_file(rec.digest):
                        out.files.add(rec.digest)

            await asyncio.to_thread(scan)
        if len(out.files) + len(out.trees) > before:
            out.targets.append(t.name)
    return out

"""The client's mirror of a remote's index: which chunks the remote has, and where.

Kept under .fastreg/state/remotes/<id>/mirror as a msgpack header followed by the table's raw
bytes (read straight into the table's buffer, so loading holds one copy of it):
["fastreg.mirror", 4, url, segments, packs, pack_segment, table length, trees, records, roots,
gc_marks, certified, marker] (certified: the tree nodes known to certify their subtree; marker:
the remote format this client last wrote or saw in fastreg-remote.toml, 0 if none)
where `table` is a blob of sorted
44-byte records (chunk key 32 + pack number uint32 + offset uint32 + length uint32; the key is
digest.wide of the chunk's digest, so format-1 and format-2 chunks share one table), `packs`
maps pack numbers to pack digests, `segments` lists the index segments merged so far and
`trees` the tree nodes known to be on the remote (each set stored as 32-byte keys).  Memory: 44
bytes per chunk plus a digest per tree; a lookup is a binary search over the blob.  Refreshing lists `index/` and
fetches only segments not seen before, so a push with nothing new costs two listings (index/
and gc/: every remote gc leaves a gc/<name> object first, and a mirror that sees a new one, or
misses a segment it knew, rebuilds itself instead of trusting what may have been deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastreg._index import find as find_record
from fastreg._index import index_records, lookup, merge_into
from fastreg.errors import DecodeError, IntegrityError, ObjectNotFound
from fastreg.objects import codec
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import WIDTH, narrow, wide
from fastreg.plan import Location
from fastreg.storage.base import Store
from fastreg.transfer import layout

REC = struct.Struct(f">{WIDTH}sIII")
MERGE_BYTES = 4 << 20  # new records merged into the table at a time
MIRROR_VERSION = 4


class RemoteIndex:
    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.segments: set[str] = set()
        self.packs: list[bytes] = []
        # The table is read from the file on first use (a push with nothing new, a `status
        # --remote` answered by certified trees, never look a chunk up): see `table`.
        self._table: bytearray | None = bytearray()  # merged into in place (merge_into), under the GIL
        # (offset, length) of the unread table in the mirror file, kept open as it was parsed (a
        # mirror saved meanwhile by another command replaces the file, not this one's bytes)
        self._table_at: tuple[int, int] = (0, 0)
        self._table_fd: weakref.finalize[Any, Any] | None = None  # closes the file descriptor
        self._table_lock = threading.RLock()
        self.pack_segment: list[str] = []  # the index segment of each pack number
        self.trees: set[bytes] = set()
        # Tree nodes known to certify their whole subtree on the remote (written children-first by
        # this client, or found whole below): a push need not look under them again.
        self.certified: set[bytes] = set()
        self.records: set[bytes] = set()
        self.roots: set[bytes] = set()  # targets whose root hint is up to date
        self.gc_marks: set[str] = set()  # remote gc runs seen (each leaves a gc/<name> object)
        self.marker = 0  # the remote format last written or seen in the remote's marker
        self._pack_no: dict[bytes, int] = {}
        self.requests = 0
        self.refreshed = False  # refreshed from the remote during this command
        self.trees_listed = False  # trees/ listed during this command

    # -- persistence -------------------------------------------------------------------------
    def load(self) -> RemoteIndex:
        """Read the mirror; a missing, damaged or older-format one is simply rebuilt from the
        remote (nothing is assigned unless the whole file parses)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return self
        keep = weakref.finalize(self, os.close, fd)
        try:
            with open(fd, "rb", closefd=False) as f:
                header = codec.stream_unpacker(f)
                v = next(header)
                if not (isinstance(v, list) and len(v) == 13 and v[0] == "fastreg.mirror" and v[1] == MIRROR_VERSION
                        and v[2] == self.url and isinstance(v[6], int)):
                    raise DecodeError("stale")
                at = header.tell()
                if f.seek(0, os.SEEK_END) != at + v[6]:
                    raise DecodeError("truncated")
            segments, packs, pack_segment = set(v[3]), list(v[4]), list(v[5])
            trees, records, roots = (_split(b) for b in v[7:10])
            gc_marks = set(v[10])
            certified = _split(v[11])
            marker = int(v[12])
            if len(packs) != len(pack_segment) or v[6] % REC.size:
                raise DecodeError("inconsistent")
        except (OSError, DecodeError, IndexError, TypeError, ValueError, StopIteration):
            keep()
            return self
        except Exception as exc:  # msgpack's own exception types: a damaged mirror is rebuilt
            keep()
            if not type(exc).__module__.startswith("msgpack"):
                raise
            return self
        self.segments, self.packs, self.pack_segment = segments, packs, pack_segment
        self._table, self._table_at, self._table_fd = None, (at, v[6]), keep
        self.trees, self.records, self.roots, self.gc_marks = trees, records, roots, gc_marks
        self.certified = certified
        self.marker = marker
        self._pack_no = {p: i for i, p in enumerate(self.packs)}
        return self

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.urandom(4).hex()}.tmp")
        header = codec.packb(["fastreg.mirror", MIRROR_VERSION, self.url, sorted(self.segments), self.packs,
                              self.pack_segment, len(self) * REC.size,
                              *(_join(s) for s in (self.trees, self.records, self.roots)),
                              sorted(self.gc_marks), _join(self.certified), self.marker])
        with open(tmp, "wb") as f:
            f.write(header)
            if self._table is not None:
                f.write(self._table)  # the buffer itself: no copy of a table of millions of chunks
            else:
                f.flush()
                self._copy_table(f.fileno())  # never read in this command: file to file
        os.replace(tmp, self.path)

    def forget(self) -> None:
        if self._table_fd is not None:
            self._table_fd()
            self._table_fd = None
        self.segments, self.packs, self.pack_segment, self._table = set(), [], [], bytearray()
        self.trees, self.records, self.roots, self._pack_no = set(), set(), set(), {}
        self.certified = set()
        self.marker = 0
        self.trees_listed = False
        self.gc_marks = set()
        self.refreshed = False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- lookups -----------------------------------------------------------------------------
    def find(self, digest: bytes) -> Location | None:
        rec = lookup(self.table, wide(digest), REC.size)  # one native step: a merge cannot move it meanwhile
        if rec is None:
            return None
        _, pack_no, offset, length = REC.unpack(rec)
        return Location(self.packs[pack_no], offset, length)

    def has(self, digest: bytes) -> bool:
        return find_record(self.table, wide(digest), REC.size) >= 0

    def __len__(self) -> int:
        return (len(self._table) if self._table is not None else self._table_at[1]) // REC.size

    def _copy_table(self, out: int) -> None:
        """The unread table, from the mirror file as loaded to `out`, file to file."""
        with self._table_lock:  # held: a lookup in another thread must not close the file meanwhile
            found = self._table_fd.peek() if self._table_fd is not None else None
            if self._table is None and found is not None:
                at, left = self._table_at
                while left:
                    n = os.copy_file_range(found[2][0], out, left, at)
                    if n <= 0:
                        raise DecodeError(f"{self.path} ended early")
                    at, left = at + n, left - n
                return
        table, done = memoryview(self.table), 0
        while done < len(table):
            done += os.write(out, table[done:])

    @property
    def table(self) -> bytearray:
        """The chunk table, read from the mirror file (as it was when loaded) on first use."""
        if self._table is None:
            with self._table_lock:  # a planner thread and the event loop may both ask first
                if self._table is None:
                    assert self._table_fd is not None
                    found = self._table_fd.peek()
                    fd = found[2][0] if found is not None else -1
                    at, length = self._table_at
                    table = bytearray(length)
                    view, done = memoryview(table), 0
                    while done < length:
                        n = os.preadv(fd, [view[done:]], at + done)
                        if n <= 0:
                            raise DecodeError(f"{self.path} ended early")
                        done += n
                    view.release()
                    self._table_fd()  # closed: the table is in memory now
                    self._table_fd = None
                    self._table = table
        return self._table

    def knows_pack(self, pack: bytes) -> bool:
        return pack in self._pack_no

    def segment_of(self, pack: bytes) -> str:
        return self.pack_segment[self._pack_no[pack]]

    # -- updates -----------------------------------------------------------------------------
    def merge(self, segments: Iterable[tuple[str, packfmt.IndexSegment]]) -> None:
        parts: list[bytes] = []
        pending = 0
        for name, seg in segments:
            if name in self.segments:
                continue
            self.segments.add(name)
            no = self._pack_no.get(seg.pack)
            if no is None:
                no = self._pack_no[seg.pack] = len(self.packs)
                self.packs.append(seg.pack)
                self.pack_segment.append(name)
            parts.append(index_records(seg.entries, no, seg.entry.size - 8))
            pending += len(parts[-1])
            if pending >= MERGE_BYTES:
                merge_into(self.table, parts, REC.size, WIDTH)
                parts, pending = [], 0
        # Sorted by record; the same chunk in two packs (concurrent pushers): one location per
        # digest. Done natively on the table, in place: no Python object per chunk, and memory of
        # the table plus at most MERGE_BYTES of new records (a mirror rebuilt from a remote of
        # millions of chunks never holds a second copy of it).
        if parts:
            merge_into(self.table, parts, REC.size, WIDTH)

    async def refresh_hints(self, store: Store, nodes: Iterable[bytes]) -> int:
        """Merge the segments named by the locator hints of `nodes` (a few small GETs instead of
        listing and reading every segment of the remote)."""
        names: list[str] = []
        for node in nodes:
            try:
                data = await store.get(layout.roots_key(node))
            except ObjectNotFound:
                continue
            self.requests += 1
            names += packfmt.decode_roots(data, store.where(layout.roots_key(node)))
        return await self._merge_named(store, names)

    async def learn_trees(self, store: Store) -> None:
        """The remote's tree nodes, from one listing of trees/ (a few thousand keys for a
        million files): a tree node there is a certificate for its subtree when every node
        below it is there too (tree.certified_nodes)."""
        if not store.can_list:
            return
        listing = await store.list(layout.TREES)
        self.requests += 1 + len(listing) // 1000
        self.trees.update(d for o in listing if (d := layout.digest_of_key(o.key)) is not None)
        self.trees_listed = True

    async def refresh(self, store: Store, roots: Iterable[bytes] = ()) -> int:
        """Merge segments the mirror has not seen: by listing index/, or, on a remote that
        cannot be listed, through the root hints of `roots`. Returns how many were new."""
        if store.can_list:
            marks_listing, index_listing = await asyncio.gather(store.list(layout.GC), store.list(layout.INDEX))
            self.requests += 2
            marks = {o.key for o in marks_listing}
            names = [o.key[len(layout.INDEX):] for o in index_listing]
            # The remote lost objects the mirror knows (a remote gc ran, or it was emptied): what
            # the mirror says is there can no longer be trusted, so it is rebuilt from scratch.
            if marks != self.gc_marks or not self.segments <= set(names):
                self.forget()
                self.gc_marks = marks
        else:
            names = []
            for root in roots:
                try:
                    data = await store.get(layout.roots_key(root))
                except ObjectNotFound:
                    continue
                self.requests += 1
                names += packfmt.decode_roots(data, store.where(layout.roots_key(root)))
        n = await self._merge_named(store, names)
        self.refreshed = True
        return n

    async def _merge_named(self, store: Store, names: Iterable[str]) -> int:
        todo = sorted({n for n in names if n not in self.segments})

        async def fetch(name: str) -> tuple[str, packfmt.IndexSegment]:
            data = await store.get(layout.index_key(name))
            try:
                return name, packfmt.decode_segment(data, name)
            except DecodeError as exc:
                raise IntegrityError(f"{store.where(layout.index_key(name))}: {exc}") from None

        results: list[tuple[str, packfmt.IndexSegment]] = []
        for i in range(0, len(todo), 64):
            results += await asyncio.gather(*(fetch(n) for n in todo[i : i + 64]))
        self.requests += len(todo)
        self.merge(results)
        return len(todo)


def _split(blob: bytes) -> set[bytes]:
    """A set of digests of either format from its WIDTH-byte keys (`_join` undone)."""
    if len(blob) % WIDTH:
        raise DecodeError("inconsistent")
    return {narrow(blob[i : i + WIDTH]) for i in range(0, len(blob), WIDTH)}


def _join(digests: set[bytes]) -> bytes:
    return b"".join(sorted(wide(d) for d in digests))


def mirror_path(state_dir: Path, url: str) -> Path:
    import xxhash

    return state_dir / "remotes" / xxhash.xxh3_64_hexdigest(url.encode()) / "mirror"

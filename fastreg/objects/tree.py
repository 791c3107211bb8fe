"""Trees: the manifest of a tracked directory, stored as a hierarchy of content-addressed nodes.

Node encoding (canonical msgpack, see codec.py), a 4-element array:

    ["fastreg.tree", 1, KIND, BODY]

- KIND "dir": BODY is the list of entries of one directory, sorted by name (code point order).
- KIND "index": a directory of more than SHARD_SIZE entries; BODY lists its shards in order as
  [first_name, shard_digest, size, files]; each shard is a node of KIND "shard" whose BODY is up
  to SHARD_SIZE consecutive entries.  Finding one file's record reads the index plus one shard.

Entries:
- file:      [name, 0 (or 1 if executable), size, digest, chunks]   chunks as in _hash.pyx
- directory: [name, 2, total_size, tree_digest, file_count]

The digest of a directory is the digest of its top node's bytes (objects/digest.py: SHA-256 in
format 2, XXH3-128 in format 1), and every digest a node holds is of the node's own format: a
reader refuses a node whose entries name another format, so no file of a format-2 tree is ever
checked with format 1's hash.  Same directory contents ->
same bytes -> same digest: names are sorted, integers use msgpack's smallest encoding, and no
maps appear.  Memory budget while building: one encoded entry (~45 bytes + name) per file of
the directory being built; finished directories keep only their digest.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from fastreg.errors import DecodeError
from fastreg.objects import codec
from fastreg.objects.digest import CURRENT, FORMATS, format_of

TREE_MAGIC = "fastreg.tree"
TREE_VERSION = 1
SHARD_SIZE = 1000

KIND_FILE = 0
KIND_EXEC = 1
KIND_DIR = 2

_DIR_PREFIX = codec.array_header(4) + codec.packb(TREE_MAGIC) + codec.packb(TREE_VERSION)


def name_problem(name: str) -> str | None:
    """The one rule for an entry's name, for what add records and every reader serves: None when
    fastreg accepts it, else why not. Any name a POSIX filesystem holds as one component is
    accepted if it is UTF-8 text (a backslash, a newline, a leading dash are ordinary
    characters); "", ".", "..", "/" and NUL never come from a folder listing, so a tree that
    has them was not written by add, and a reader refuses to write them."""
    if name in ("", ".", ".."):
        return f"the name {name!r} is not a file name"
    if "/" in name or "\0" in name:
        return f"the name {name!r} holds a '/' or NUL"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    return None


@dataclass(frozen=True, slots=True)
class FileRecord:
    size: int
    digest: bytes
    chunks: bytes  # empty: the file is one chunk
    executable: bool = False


@dataclass(frozen=True, slots=True)
class DirRecord:
    size: int
    digest: bytes
    files: int


Record = FileRecord | DirRecord


class TreeStore(Protocol):
    """Where tree nodes live (local cache, a remote's mirror, memory in tests)."""

    def get_tree(self, digest: bytes) -> bytes: ...

    def put_tree(self, data: bytes, digest_size: int = CURRENT) -> bytes:
        """Store a node; its digest in the format of digest_size."""
        ...


class MixedFormatsError(ValueError):
    """Entries of both digest formats for one node: a node names its children in its own format."""


def encode_file(name: str, rec: FileRecord) -> bytes:
    return codec.packb([name, KIND_EXEC if rec.executable else KIND_FILE, rec.size, rec.digest, rec.chunks])


def encode_dir(name: str, rec: DirRecord) -> bytes:
    return codec.packb([name, KIND_DIR, rec.size, rec.digest, rec.files])


def _node(kind: str, count: int, body: bytes) -> bytes:
    return _DIR_PREFIX + codec.packb(kind) + codec.array_header(count) + body


class DirBuilder:
    """Builds the node(s) of one directory from encoded entries added in name order.

    A shard is written to the store as soon as it is full, so a directory of a million files
    holds at most SHARD_SIZE encoded entries in memory.
    """

    def __init__(self, store: TreeStore, digest_size: int | None = None) -> None:
        """digest_size: the format of the nodes built; by default that of the first entry (an
        empty folder: format 2). Every entry must be of it (MixedFormatsError)."""
        self._store = store
        self._digest_size = digest_size
        self._buf = bytearray()
        self._count = 0
        self._first = ""
        self._last: str | None = None
        self._shard_size = 0
        self._shard_files = 0
        self._shards: list[list[Any]] = []
        self.size = 0
        self.files = 0

    def add(self, name: str, encoded: bytes, size: int, files: int) -> None:
        if self._last is not None and name <= self._last:
            raise ValueError(f"tree entries out of order: {self._last!r} then {name!r}")
        if self._count == SHARD_SIZE:
            self._flush_shard()
        if self._count == 0:
            self._first = name
        self._last = name
        self._buf += encoded
        self._count += 1
        self._shard_size += size
        self._shard_files += files
        self.size += size
        self.files += files

    def add_file(self, name: str, rec: FileRecord) -> None:
        self._check(name, rec.digest)
        self.add(name, encode_file(name, rec), rec.size, 1)

    def add_dir(self, name: str, rec: DirRecord) -> None:
        self._check(name, rec.digest)
        self.add(name, encode_dir(name, rec), rec.size, rec.files)

    def _check(self, name: str, digest: bytes) -> None:
        if self._digest_size is None:
            self._digest_size = len(digest)
        elif len(digest) != self._digest_size:
            raise MixedFormatsError(f"{name}: a digest of format {format_of(digest)} among entries of "
                                    f"format {FORMATS.get(self._digest_size, '?')}")

    @property
    def digest_size(self) -> int:
        return self._digest_size if self._digest_size is not None else CURRENT

    def _flush_shard(self) -> None:
        digest = self._store.put_tree(_node("shard", self._count, bytes(self._buf)), self.digest_size)
        self._shards.append([self._first, digest, self._shard_size, self._shard_files])
        self._buf = bytearray()
        self._count = 0
        self._shard_size = 0
        self._shard_files = 0

    def finish(self) -> DirRecord:
        if not self._shards:
            digest = self._store.put_tree(_node("dir", self._count, bytes(self._buf)), self.digest_size)
        else:
            if self._count:
                self._flush_shard()
            body = b"".join(codec.packb(s) for s in self._shards)
            digest = self._store.put_tree(_node("index", len(self._shards), body), self.digest_size)
        return DirRecord(self.size, digest, self.files)


def _decode_node(data: bytes, digest: bytes) -> tuple[str, list[Any]]:
    node = codec.unpackb(data)
    if not (isinstance(node, list) and len(node) == 4 and node[0] == TREE_MAGIC):
        raise DecodeError(f"object {digest.hex()} is not a fastreg tree")
    if node[1] != TREE_VERSION:
        raise DecodeError(
            f"tree {digest.hex()} has format version {node[1]!r}; this fastreg reads version "
            f"{TREE_VERSION}: upgrade fastreg"
        )
    if node[2] not in ("dir", "index", "shard") or not isinstance(node[3], list):
        raise DecodeError(f"tree {digest.hex()} is corrupt (unknown kind {node[2]!r})")
    return node[2], node[3]


def _decode_entry(raw: Any, digest: bytes) -> tuple[str, Record]:
    try:
        name, kind, size, dg, extra = raw
        if not (isinstance(name, str) and isinstance(size, int) and isinstance(dg, bytes)
                and len(dg) == len(digest)):
            raise TypeError
        if kind in (KIND_FILE, KIND_EXEC) and isinstance(extra, bytes) and len(extra) % (len(dg) + 4) == 0:
            return name, FileRecord(size, dg, extra, kind == KIND_EXEC)
        if kind == KIND_DIR and isinstance(extra, int):
            return name, DirRecord(size, dg, extra)
        raise TypeError
    except (TypeError, ValueError):
        raise DecodeError(f"tree {digest.hex()} has a corrupt entry") from None


def iter_dir(store: TreeStore, digest: bytes) -> Iterator[tuple[str, Record]]:
    """Entries of one directory in name order (shards followed transparently)."""
    kind, body = _decode_node(store.get_tree(digest), digest)
    if kind == "shard":
        raise DecodeError(f"tree {digest.hex()} is a shard, not a directory")
    if kind == "dir":
        for raw in body:
            yield _decode_entry(raw, digest)
        return
    for shard in body:
        shard_digest = shard[1]
        skind, sbody = _decode_node(store.get_tree(shard_digest), shard_digest)
        if skind != "shard":
            raise DecodeError(f"tree {digest.hex()} points to a non-shard {shard_digest.hex()}")
        for raw in sbody:
            yield _decode_entry(raw, shard_digest)


def walk(store: TreeStore, digest: bytes, prefix: str = "",
         empty: Callable[[str], None] | None = None) -> Iterator[tuple[str, FileRecord]]:
    """Every file under a directory as (relative POSIX path, record), in canonical order;
    `empty(path)` is called for each folder that holds no file at all (it is kept in the tree,
    and a check-out makes it), at no extra read."""
    return walk_pruned(store, digest, frozenset(), prefix, empty)


def walk_dirs(store: TreeStore, digest: bytes) -> Iterator[bytes]:
    """Every node digest reachable from a directory (itself, subdirectories, shards)."""
    yield digest
    kind, body = _decode_node(store.get_tree(digest), digest)
    if kind == "index":
        for shard in body:
            yield shard[1]
    for _, rec in iter_dir(store, digest):
        if isinstance(rec, DirRecord):
            yield from walk_dirs(store, rec.digest)


def lookup(store: TreeStore, digest: bytes, relpath: str) -> Record | None:
    """The record at relpath ('a/b.jpg') under a directory, reading one node (plus one shard)
    per path component."""
    found = locate(store, digest, relpath)
    return None if found is None else found[1]


def shards_of(data: bytes, digest: bytes) -> list[bytes]:
    """The shard digests of an index node (a large directory); [] for a plain directory node."""
    kind, body = _decode_node(data, digest)
    return [s[1] for s in body] if kind == "index" else []


def child_nodes(data: bytes, digest: bytes) -> list[bytes]:
    """Digests of the nodes a node points to (its shards, or its subdirectories)."""
    kind, body = _decode_node(data, digest)
    if kind == "index":
        return [s[1] for s in body]
    # Only folder entries are decoded (file entries, the bulk of a node, are checked by the walks
    # that read them).
    out = []
    for raw in body:
        if isinstance(raw, list) and len(raw) == 5 and raw[1] == KIND_DIR:
            rec = _decode_entry(raw, digest)[1]
            assert isinstance(rec, DirRecord)
            out.append(rec.digest)
    return out


class NodeMemo:
    """Nodes decoded for locate(), with the names it bisects, kept by digest for a store that
    finds many paths (a reader behind a web view or a file system): a node's digest names its
    bytes, so a kept node never goes stale. At most ENTRIES entries in all, least recently used
    first out."""

    ENTRIES = 1 << 15

    def __init__(self) -> None:
        self._nodes: OrderedDict[bytes, tuple[str, list[Any], list[str]]] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()

    def node(self, store: TreeStore, digest: bytes) -> tuple[str, list[Any], list[str]]:
        with self._lock:
            hit = self._nodes.get(digest)
            if hit is not None:
                self._nodes.move_to_end(digest)
                return hit
        hit = _keyed_node(store, digest)
        with self._lock:
            if digest not in self._nodes:
                self._nodes[digest] = hit
                self._entries += len(hit[1])
                while self._entries > self.ENTRIES and len(self._nodes) > 1:
                    self._entries -= len(self._nodes.popitem(last=False)[1][1])
        return hit


def _keyed_node(store: TreeStore, digest: bytes) -> tuple[str, list[Any], list[str]]:
    """A node decoded, with the names of its entries (an index: its shards' first names)."""
    kind, body = _decode_node(store.get_tree(digest), digest)
    return kind, body, [entry[0] for entry in body]


def locate(store: TreeStore, digest: bytes, relpath: str) -> tuple[bytes, Record] | None:
    """Like lookup, and also the digest of the node (directory or shard) whose entries hold the
    record: the node a push writes a locator hint for. A store with a `memo` (a NodeMemo) keeps
    the nodes it decodes."""
    memo: NodeMemo | None = getattr(store, "memo", None)
    read = _keyed_node if memo is None else memo.node
    rec: Record = DirRecord(0, digest, 0)
    node = digest
    for part in relpath.strip("/").split("/"):
        if not isinstance(rec, DirRecord):
            return None
        kind, body, names = read(store, rec.digest)
        node = rec.digest
        if kind == "index":
            i = bisect.bisect_right(names, part) - 1
            if i < 0:
                return None
            node = body[i][1]
            kind, body, names = read(store, node)
        i = bisect.bisect_left(names, part)
        if i >= len(names) or names[i] != part:
            return None
        rec = _decode_entry(body[i], node)[1]
    return node, rec


#: (path, record before, record after): None before = added, None after = deleted
Change = tuple[str, FileRecord | None, FileRecord | None]


def diff(store: TreeStore, old: bytes | None, new: bytes | None, prefix: str = "") -> Iterator[Change]:
    """Files that differ between two directories (None: an empty one), in canonical path order.
    A merge of the two sorted entry lists; a subdirectory with the same digest on both sides is
    skipped without reading it, so the work follows what changed, not the size of the trees.
    A file whose digest and executable bit are equal is unchanged."""
    if old == new:
        return
    before = iter_dir(store, old) if old is not None else iter(())
    after = iter_dir(store, new) if new is not None else iter(())
    a, b = next(before, None), next(after, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield from _one_side(store, prefix + a[0], a[1], deleted=True)
            a = next(before, None)
        elif a is None or b[0] < a[0]:
            yield from _one_side(store, prefix + b[0], b[1], deleted=False)
            b = next(after, None)
        else:
            path, ra, rb = prefix + a[0], a[1], b[1]
            if isinstance(ra, DirRecord) and isinstance(rb, DirRecord):
                yield from diff(store, ra.digest, rb.digest, path + "/")
            elif isinstance(ra, FileRecord) and isinstance(rb, FileRecord):
                if (ra.digest, ra.executable) != (rb.digest, rb.executable):
                    yield path, ra, rb
            else:  # a file became a directory or the reverse
                yield from _one_side(store, path, ra, deleted=True)
                yield from _one_side(store, path, rb, deleted=False)
            a, b = next(before, None), next(after, None)


def graft(store: TreeStore, new: bytes | None, old: bytes, keep_file: Callable[[str], bool],
          keep_folder: Callable[[str], bool], prefix: str = "") -> tuple[DirRecord | None, int]:
    """Directory `new` with the entries of `old` that new lacks put back where `keep_file(path)`
    (a file) or `keep_folder(path + "/")` (a whole folder, taken as it is) says so; a folder
    that is not kept whole is grafted entry by entry. Returns the new directory's record and how
    many files were put back, or (None, 0) when none was: then no node was changed. Where both
    sides have a name, new's entry wins (a file that became a folder stays a folder). Nodes are
    rebuilt only on the paths where something is put back, plus the folders that differ."""
    if new == old:
        return None, 0
    before = iter_dir(store, old)
    after = iter_dir(store, new) if new is not None else iter(())
    out = DirBuilder(store, len(old))
    put_back = 0
    a, b = next(before, None), next(after, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            name, rec = a
            path = prefix + name
            if isinstance(rec, FileRecord):
                if keep_file(path):
                    out.add_file(name, rec)
                    put_back += 1
            elif keep_folder(path + "/"):
                out.add_dir(name, rec)
                put_back += rec.files
            else:
                sub, n = graft(store, None, rec.digest, keep_file, keep_folder, path + "/")
                if sub is not None:
                    out.add_dir(name, sub)
                    put_back += n
            a = next(before, None)
            continue
        name, rec_b = b
        if a is not None and a[0] == name:
            rec_a = a[1]
            if isinstance(rec_a, DirRecord) and isinstance(rec_b, DirRecord) and rec_a.digest != rec_b.digest:
                sub, n = graft(store, rec_b.digest, rec_a.digest, keep_file, keep_folder, prefix + name + "/")
                if sub is not None:
                    rec_b = sub
                    put_back += n
            a = next(before, None)
        if isinstance(rec_b, DirRecord):
            out.add_dir(name, rec_b)
        else:
            out.add_file(name, rec_b)
        b = next(after, None)
    if not put_back:
        return None, 0
    return out.finish(), put_back


def _one_side(store: TreeStore, path: str, rec: Record, deleted: bool) -> Iterator[Change]:
    if isinstance(rec, FileRecord):
        yield (path, rec, None) if deleted else (path, None, rec)
        return
    for rel, frec in walk(store, rec.digest, path + "/"):
        yield (rel, frec, None) if deleted else (rel, None, frec)


# -- certificates: subtrees a remote holds whole ---------------------------------------------------
def certified_nodes(store: TreeStore, digest: bytes, on_remote: Callable[[bytes], bool],
                    trusted: set[bytes] | frozenset[bytes] = frozenset()) -> set[bytes]:
    """The nodes under digest (itself included) that a remote holds together with every node
    below them. A push writes tree nodes only after every pack, and a node only after the nodes
    below it, so such a node certifies its whole subtree: every chunk under it is committed and
    every node below it is there. A node in `trusted` (found whole before, or written by a push
    of this client) is taken as certified without reading below it, so the work follows what
    changed: the nodes on the paths to new data, and the children of the nodes on those paths.
    Only the topmost certified nodes matter to a walk that prunes them."""
    out: set[bytes] = set()

    def visit(node: bytes) -> bool:
        if node in trusted and on_remote(node):
            out.add(node)
            return True
        whole = on_remote(node)
        for child in child_nodes(store.get_tree(node), node):
            whole = visit(child) and whole
        if whole:
            out.add(node)
        return whole

    visit(digest)
    return out


def walk_pruned(store: TreeStore, digest: bytes, skip: set[bytes] | frozenset[bytes],
                prefix: str = "", empty: Callable[[str], None] | None = None) -> Iterator[tuple[str, FileRecord]]:
    """walk(), leaving out the subdirectories whose node is in skip (and everything if digest is)."""
    if digest in skip:
        return
    for name, rec in iter_dir(store, digest):
        path = prefix + name
        if isinstance(rec, DirRecord):
            if rec.files == 0 and empty is not None:
                empty_folders(store, rec.digest, path, empty)
            elif rec.files:
                yield from walk_pruned(store, rec.digest, skip, path + "/", empty)
        else:
            yield path, rec


def empty_folders(store: TreeStore, digest: bytes, path: str, empty: Callable[[str], None]) -> None:
    """A folder without files: the deepest folders of it (making those makes it all)."""
    subs = [(name, rec) for name, rec in iter_dir(store, digest) if isinstance(rec, DirRecord)]
    if not subs:
        empty(path)
    for name, rec in subs:
        empty_folders(store, rec.digest, f"{path}/{name}", empty)


def levels_pruned(store: TreeStore, digest: bytes, skip: set[bytes]) -> list[list[bytes]]:
    """The nodes under digest not in skip (subtrees in skip left out), by depth: [[root], [its
    children and shards], ...]. Uploading the deepest level first writes a node after all nodes
    below it."""
    levels: list[list[bytes]] = []
    todo = [digest] if digest not in skip else []
    while todo:
        levels.append(todo)
        nxt = []
        for node in todo:
            nxt += [c for c in child_nodes(store.get_tree(node), node) if c not in skip]
        todo = nxt
    return levels


def file_nodes_pruned(store: TreeStore, digest: bytes,
                      skip: set[bytes] | frozenset[bytes]) -> Iterator[tuple[bytes, list[FileRecord]]]:
    """Every node (directory or shard) under digest that holds file entries, with its files,
    leaving out the subtrees in skip."""
    if digest in skip:
        return
    kind, body = _decode_node(store.get_tree(digest), digest)
    if kind == "index":
        for shard in body:
            yield from file_nodes_pruned(store, shard[1], skip)
        return
    files = []
    for raw in body:
        _, rec = _decode_entry(raw, digest)
        if isinstance(rec, DirRecord):
            yield from file_nodes_pruned(store, rec.digest, skip)
        else:
            files.append(rec)
    if files:
        yield digest, files


def from_files(store: TreeStore, files: list[tuple[str, FileRecord]], folders: tuple[str, ...] = ()) -> DirRecord:
    """The tree of a directory given as (relative path, record) pairs (and empty folders), its
    nodes put into store: the tree `add` would build of the same files."""
    top: dict[str, Any] = {}
    for rel, rec in files:
        *parents, name = rel.split("/")
        node = top
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"{rel}: a file and a folder of the same name")
        if name in node:
            raise ValueError(f"{rel}: listed twice")
        node[name] = rec
    for rel in folders:
        node = top
        for p in rel.split("/"):
            node = node.setdefault(p, {})

    size = len(files[0][1].digest) if files else CURRENT

    def build(node: dict[str, Any]) -> DirRecord:
        out = DirBuilder(store, size)
        for name in sorted(node):
            child = node[name]
            if isinstance(child, dict):
                out.add_dir(name, build(child))
            else:
                out.add_file(name, child)
        return out.finish()

    return build(top)

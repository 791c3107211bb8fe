"""A fastreg registry at one commit, read (the `Reader` of registry/reader.py for registries that
have `.fastreg/`): metafiles from Git, tree nodes and bytes from a `DataSource`, which is the
registry's default fastreg remote (`FastregSource`, one transfer session; the engine sits behind
it and no caller of the reader sees it).
"""

from __future__ import annotations

import bisect
import io
import itertools
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastreg import userdirs
from fastreg.chunking import WHOLE_FILE_LIMIT, file_matches, iter_chunks
from fastreg.errors import (
    DamagedChunksError,
    DirectoryPathError,
    FastregError,
    MetafileError,
    MissingPathError,
    NoRemoteError,
    PathError,
    RegistryError,
)
from fastreg.objects import metafile, tree
from fastreg.objects.digest import CURRENT
from fastreg.objects.tree import DirRecord, FileRecord
from fastreg.plan import Location
from fastreg.progress import Progress
from fastreg.registry.mirror import Mirror, Resolved
from fastreg.registry.reader import (
    Identity,
    Listed,
    Located,
    Materials,
    MetaPair,
    Reader,
    RegistryCommit,
    clean_path,
    safe_name,
)
from fastreg.repo import remotes
from fastreg.repo.cache import Cache
from fastreg.storage.base import Positioned
from fastreg.transfer.fetch import FetchResult
from fastreg.transfer.session import RemoteSession

if TYPE_CHECKING:
    from fastreg.repo.diff import FileChange

#: A file read whole through open() is kept in the cache when it is at most this big (its chunks
#: are held while the file is open until then); bigger files keep only the last few chunks.
KEEP_LIMIT = 64 << 20
_RECENT = 8  # chunks a big file keeps while it is open
READ_AHEAD = 256 << 10  # bytes a raw read fetches past the position at most (neighbours coalesced)
LOCATE_BY_GIT = 8  # locate() calls that ask Git for each path's metafiles (then: the names, once)


class DataSource(Protocol):
    """Where a registry's bytes and trees come from, as the reader needs them; every answer
    verified. `root` is the digest of the tracked path's metafile, `node` the tree node that
    holds a file (or the root): sources that index by them use them to find the bytes."""

    def tree_node(self, digest: bytes) -> bytes: ...

    def trees(self, roots: list[bytes]) -> None: ...

    def record(self, digest: bytes, size: int) -> FileRecord: ...

    def prepare(self, records: Iterable[FileRecord], node: bytes, root: bytes) -> None: ...

    def read_chunks(self, wanted: list[tuple[bytes, int]], root: bytes) -> dict[bytes, bytes]: ...

    def locations(self, chunks: Iterable[bytes]) -> dict[bytes, Location]: ...

    def fetch(self, files: Iterable[FileRecord], roots: list[bytes], progress: Progress | None,
              on_arrival: Callable[[], None] | None) -> FetchResult: ...

    def close(self) -> None: ...


class FastregSource:
    """A fastreg registry's data: its remote, through one transfer session (one event loop, so
    one request stream at a time: the lock serializes threads that share a reader)."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session
        self.lock = threading.RLock()

    def tree_node(self, digest: bytes) -> bytes:
        with self.lock:
            return self.session.fetch_tree_node(digest)

    def trees(self, roots: list[bytes]) -> None:
        with self.lock:
            self.session.fetch_trees(roots)

    def record(self, digest: bytes, size: int) -> FileRecord:
        with self.lock:
            return self.session.fetch_record(digest, size)

    def prepare(self, records: Iterable[FileRecord], node: bytes, root: bytes) -> None:
        """Learn where the chunks are: the node's locator hint first (a segment or two), then the
        remote's listing (and the root's hint for a remote that cannot be listed)."""
        chunks = [d for r in records for d, _ in iter_chunks(r.chunks, r.digest, r.size)]
        with self.lock:
            self.session.locate(chunks, hints=[node], roots=[root])

    def read_chunks(self, wanted: list[tuple[bytes, int]], root: bytes) -> dict[bytes, bytes]:
        with self.lock:
            return self.session.read_chunks(wanted, [root])

    def locations(self, chunks: Iterable[bytes]) -> dict[bytes, Location]:
        """Where each chunk is on the remote (pack, offset, length), as far as prepare() has
        learnt; a chunk it does not know is left out."""
        with self.lock:
            return self.session.locations(chunks)

    def fetch(self, files: Iterable[FileRecord], roots: list[bytes], progress: Progress | None,
              on_arrival: Callable[[], None] | None) -> FetchResult:
        with self.lock:
            return self.session.fetch_files(files, roots, progress, on_arrival=on_arrival)

    def close(self) -> None:
        self.session.close()


class FastregReader(RegistryCommit):
    """A fastreg registry at one commit: its metafiles and tree nodes (read lazily, kept in the
    cache), its data through a `DataSource` (its default fastreg remote, opened on first need and
    closed by close() or the with-block)."""

    kind = "fastreg"

    def __init__(self, git: Mirror, resolved: Resolved, config: bytes | None, cache: Cache | None = None,
                 jobs: int | None = None) -> None:
        super().__init__(git, resolved, cache, jobs)
        try:
            self.config: dict[str, Any] = tomllib.loads(config.decode()) if config else {}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self.url}: its .fastreg/config is not valid TOML ({exc})") from None
        self._source: DataSource | None = None
        self._metafiles: dict[str, metafile.Metafile] | None = None
        self._locates = 0
        self._trees: _Trees | None = None
        self._metafile_names: frozenset[str] | None = None  # of the commit's metafiles (see locate)
        self._metafile_bytes: dict[str, bytes | None] = {}
        self._lock = threading.Lock()
        # an imported path's metafile digest -> its source's reader and root (see materials, fetch)
        self._import_roots: dict[bytes, tuple[Reader, bytes]] = {}

    def close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()
        super().close()

    # -- the Git side ----------------------------------------------------------------------------
    def metafiles(self) -> dict[str, metafile.Metafile]:
        """Every tracked path of the commit and its metafile."""
        if self._metafiles is None:
            self._metafiles = self.git.metafiles(self.commit)
        return self._metafiles

    def meta_at(self, target: str) -> metafile.Metafile | None:
        return self._meta(target, self.git.read(self.commit, target + metafile.METAFILE_SUFFIX))

    def _meta(self, target: str, data: bytes | None) -> metafile.Metafile | None:
        if data is None:
            return None
        try:
            return metafile.loads(data.decode(), f"{self.url}:{target}{metafile.METAFILE_SUFFIX}")
        except UnicodeDecodeError:
            raise MetafileError(f"{self.url}:{target}{metafile.METAFILE_SUFFIX} is not text") from None

    def locate(self, path: str) -> Located:
        """What path is: a tracked path, a file or folder inside a tracked directory, or a plain
        Git file (a Git folder is an error: it is not one piece of data)."""
        path = clean_path(path)
        parts = path.split("/")
        owners = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]  # the path, then its parents
        for owner, data in zip(owners, self._owner_metafiles(owners), strict=True):
            meta = self._meta(owner, data)
            if meta is None:
                continue
            if owner == path:
                return Located(path, meta, None)
            if meta.kind != "dir":
                break
            return Located(owner, meta, path[len(owner) + 1:])
        return self.locate_in_git(path)

    def _owner_metafiles(self, owners: list[str]) -> list[bytes | None]:
        """The metafile bytes of each owner at the commit (None: it has none). The first
        LOCATE_BY_GIT calls ask Git for exactly these; a reader used for more (a web view, a file
        system, a dataset's files opened one by one) reads the names of the commit's metafiles
        once, then asks Git only for a metafile it has not read yet."""
        suffix = metafile.METAFILE_SUFFIX
        with self._lock:
            self._locates += 1
            if self._locates > LOCATE_BY_GIT and self._metafile_names is None:
                self._metafile_names = self.git.names(self.commit, suffix)
            names = self._metafile_names
        if names is None:
            return self.git.read_many(self.commit, [o + suffix for o in owners])
        unread = [o for o in owners if o + suffix in names and o not in self._metafile_bytes]
        if unread:
            for owner, data in zip(unread, self.git.read_many(self.commit, [o + suffix for o in unread]), strict=True):
                self._metafile_bytes[owner] = data
        return [self._metafile_bytes[o] if o + suffix in names else None for o in owners]

    # -- the data source ---------------------------------------------------------------------------
    @property
    def source(self) -> DataSource:
        with self._lock:
            if self._source is None:
                self._source = FastregSource(self.open_session())
            return self._source

    def open_session(self) -> RemoteSession:
        """A transfer session on the registry's default remote (as committed at this commit)."""
        remote, base = self.remote_spec()
        return remotes.open_session(remote, base, self.jobs, self.cache, userdirs.remote_state())

    def remote_spec(self) -> tuple[remotes.Remote, Path]:
        """The registry's default remote at this commit, and the folder a relative local remote
        is relative to (what a process of its own needs to open the same store)."""
        try:
            remote = remotes.pick(self.config, None, where=f"the registry {self.url}")
        except FastregError as exc:
            raise NoRemoteError(f"{exc.message.split(';')[0]} at {self.commit[:10]}, so its data cannot be read; "
                                "its maintainers must commit one (`fastreg remote add -d NAME URL`)") from None
        base = Path(self.url) if "://" not in self.url and Path(self.url).is_dir() else None
        if remote.kind == "local" and not Path(remote.url).expanduser().is_absolute() and base is None:
            raise RegistryError(f"the registry's remote {remote.name!r} is a relative local path ({remote.url}); "
                                "it only works for a registry on this machine")
        return remote, (base or Path.cwd()).resolve()

    @property
    def trees(self) -> tree.TreeStore:
        """Tree nodes from the cache, or from the source on first use (verified, then cached);
        the nodes that locate() decodes are kept for the reader's later lookups."""
        if self._trees is None:
            self._trees = _Trees(self)
        return self._trees

    # -- records, listings -------------------------------------------------------------------------
    def record(self, loc: Located) -> tree.Record:
        """The record of a located tracked path: a FileRecord (with the chunk list of a big
        single-file target) or a DirRecord. MissingPathError when a subpath is not in the tree."""
        meta = loc.meta
        assert meta is not None
        if loc.subpath is None:
            if meta.kind == "dir":
                return DirRecord(meta.size, meta.digest, meta.files)
            return FileRecord(meta.size, meta.digest, b"", meta.executable)
        found = tree.lookup(self.trees, meta.digest, loc.subpath)
        if found is None:
            raise MissingPathError(f"{loc.path}: not in the tracked directory {loc.target} of {self.url}")
        return found

    def ls(self, loc: Located) -> Iterator[tuple[str, tree.Record]]:
        """The entries of a tracked folder (name, record): its own tree nodes, and the nodes on
        its path, no data."""
        rec = self.record(loc)
        if not isinstance(rec, DirRecord):
            raise PathError(f"{loc.path}: a file, not a folder")
        return tree.iter_dir(self.trees, rec.digest)

    def walk(self, loc: Located, empty: Callable[[str], None] | None = None) -> Iterator[tuple[str, FileRecord]]:
        """Every file under a tracked folder (path relative to it, record), the folder's whole
        subtree read first (in parallel); entry names checked."""
        rec = self.record(loc)
        if not isinstance(rec, DirRecord):
            raise PathError(f"{loc.path}: a file, not a folder")
        self.source.trees([rec.digest])

        def checked(rel: str) -> str:
            for part in rel.split("/"):
                safe_name(part, rec.digest.hex())
            return rel

        on_empty = None if empty is None else lambda p: empty(checked(p))
        for rel, frec in tree.walk(self.cache, rec.digest, empty=on_empty):
            yield checked(rel), frec

    def hidden(self, path: str) -> bool:
        """A Git file that is the registry's own bookkeeping (its metafiles, config and
        .gitignore files): neither `list` nor fastreg:// shows it."""
        return (path.startswith(".fastreg/") or path.endswith(metafile.METAFILE_SUFFIX)
                or path.rpartition("/")[2] == ".gitignore")

    def known(self, loc: Located) -> Listed:
        meta = loc.meta
        assert meta is not None and loc.subpath is None
        return Listed(meta.kind, meta.size, meta.files if meta.kind == "dir" else None)

    def stat(self, loc: Located) -> Listed:
        """What a located path inside tracked data is, for a listing (no data read)."""
        if (src := self.imported(loc)) is not None:
            return src[0].stat(src[1])
        return _listed(self.record(loc))

    def listdir(self, loc: Located) -> list[tuple[str, Listed]]:
        """The entries of a tracked folder (name, what it is), tree nodes only."""
        if (src := self.imported(loc)) is not None:
            return src[0].listdir(src[1])
        return [(name, _listed(rec)) for name, rec in self.ls(loc)]

    def listall(self, loc: Located) -> list[tuple[str, Listed]]:
        """Every file under a tracked folder (path relative to it, what it is), tree nodes only."""
        if (src := self.imported(loc)) is not None:
            return src[0].listall(src[1])
        return [(rel, _listed(rec)) for rel, rec in self.walk(loc)]

    def identity(self, loc: Located) -> Identity:
        if loc.meta is None:
            return Identity(len(self.git_bytes(loc.path)), None)
        if (src := self.imported(loc)) is not None:
            return src[0].identity(src[1])
        rec = self.record(loc)  # tree nodes only
        return Identity(rec.size, rec.digest.hex())

    def diff(self, newer: Reader, pairs: list[MetaPair], within: list[str] | None) -> list[FileChange]:
        """From metafiles and the tree nodes that differ; the nodes come from the newer side's
        remote (this one's if it has none)."""
        from fastreg.repo.diff import classify, compare_files, compare_metas, settle_formats

        assert isinstance(newer, FastregReader)  # open_reader gives one kind per registry layout
        changed_dirs = [p for p, ma, mb in pairs if (ma is None or mb is None or ma.digest != mb.digest)
                        and any(m is not None and m.kind == "dir" for m in (ma, mb))]
        reg = newer if remotes.default_name(newer.config) else self
        store = reg.trees if changed_dirs else reg.cache
        changes: list[tree.Change] = []
        for p, ma, mb in pairs:
            imported = any(m is not None and m.source is not None for m in (ma, mb))
            if imported and (ma is None or mb is None or ma.digest != mb.digest):
                # imported data: its tree nodes are its source's, each side read from its own
                sides = [{} if m is None else _side_files(r, p, m) for r, m in ((self, ma), (newer, mb))]
                changes.extend(compare_files(p, *sides))
                continue
            changes.extend(compare_metas(store, p, ma, mb))
        roots = [ma.digest for _, ma, _ in pairs if ma is not None and ma.source is None]

        def fetch(records: list[FileRecord]) -> None:  # the "before" side's bytes, from its remote
            # a big single-file target's chunk list is on the remote, not in its metafile
            whole = [self.source.record(r.digest, r.size) if r.size > WHOLE_FILE_LIMIT and not r.chunks else r
                     for r in records]
            self.source.fetch(whole, roots, None, None)

        return classify(settle_formats(changes, self.cache, fetch), within)

    def import_source(self, sources: list[metafile.ImportSource]) -> RemoteSession | None:
        loc = self.locate(sources[0].path)
        if loc.meta is None:
            self.git_file_into_cache(loc)
            return None
        if any(self.imported(self.locate(s.path)) is not None for s in sources):
            for s in sources:  # data this registry imported: its source's, brought into the cache here
                self.prefetch_whole(self.locate(s.path))
            return None
        return self.open_session()

    def prefetch_whole(self, loc: Located) -> None:
        """A located path's files into the reader's cache (what it lacks), verified."""
        got = self.materials(loc)
        assert loc.meta is not None
        res = self.fetch(got.files, loc.meta.digest)
        if res.damaged:
            from fastreg.transfer.fetch import damage_error

            raise damage_error(res.damaged, lambda d: d.hex(), res.files)

    def materials(self, loc: Located, progress: Progress | None = None) -> Materials:
        """The files of a tracked path (or of a file or folder inside one), reading only the tree
        nodes it needs, with the source ready to fetch them (progress: for a source that must
        bring the data to know what it is made of; a fastreg registry never does)."""
        meta = loc.meta
        assert meta is not None
        if (src := self.imported(loc)) is not None:  # fetch() reads it from there
            reader, inner = src
            assert inner.meta is not None
            self._import_roots[meta.digest] = (reader, inner.meta.digest)
            return reader.materials(inner, progress)
        if meta.kind == "file":
            rec = self.file_record(loc)
            return Materials.single(rec)
        found = self.record(loc)
        if isinstance(found, FileRecord):
            if not self.cache.has_file(found.digest):
                self.prepare(loc, [found])
            return Materials.single(found)
        folders: list[str] = []
        files = list(self.walk(loc, empty=folders.append))
        return Materials(files, "dir", found.digest, sum(r.size for _, r in files), len(files), tuple(folders))

    def file_record(self, loc: Located) -> FileRecord:
        """A located file's record with its chunk list (a big single-file target's comes from the
        source) and the source ready to read it."""
        rec = self.record(loc)
        if isinstance(rec, DirRecord):
            raise DirectoryPathError(f"{loc.path}: a directory; open its files, or get it whole")
        if self.cache.has_file(rec.digest):
            return rec
        rec = self.with_chunks(loc, rec)
        self.prepare(loc, [rec])
        return rec

    def with_chunks(self, loc: Located, rec: FileRecord) -> FileRecord:
        """rec with its chunk list: a big single-file target keeps its list on the source, not in
        the metafile (a file inside a tree has it in its tree entry already)."""
        assert loc.meta is not None
        if loc.meta.kind == "file" and rec.size and not rec.chunks:
            return self.source.record(rec.digest, rec.size)
        return rec

    def prepare(self, loc: Located, records: list[FileRecord]) -> None:
        """Have the source ready to read these files of loc (see DataSource.prepare)."""
        assert loc.meta is not None
        node = loc.meta.digest
        if loc.subpath is not None and loc.meta.kind == "dir":
            located = tree.locate(self.trees, loc.meta.digest, loc.subpath)
            if located is not None:
                node = located[0]
        self.source.prepare(records, node, loc.meta.digest)

    # -- reading data ----------------------------------------------------------------------------
    def open(self, loc: Located) -> io.RawIOBase:
        """A located file as a raw, seekable, read-only file: from the cache when it is there,
        else chunk by chunk from the source (see ChunkedFile); plain Git files from Git."""
        if loc.meta is None:
            return self.open_git(loc)
        if (src := self.imported(loc)) is not None:
            return src[0].open(src[1])
        rec = self.file_record(loc)
        if self.cache.has_file(rec.digest):
            return io.FileIO(self.cache.file_path(rec.digest), "rb")
        return ChunkedFile(self, rec, loc.meta.digest, loc.path)

    def read_files(self, wanted: list[tuple[Located, FileRecord]]) -> dict[bytes, bytes]:
        """Whole files into memory (file digest -> content) with one planned batch of ranged
        reads, each chunk and each file verified."""
        records = [r for _, r in wanted]
        by_root: dict[bytes, tuple[Located, dict[bytes, int], list[FileRecord]]] = {}
        for loc, r in wanted:
            assert loc.meta is not None
            _, chunks, recs = by_root.setdefault(loc.meta.digest, (loc, {}, []))
            chunks.update(iter_chunks(r.chunks, r.digest, r.size))
            recs.append(r)
        data: dict[bytes, bytes] = {}
        for root, (_, chunks, recs) in by_root.items():
            self.source.prepare(recs, root, root)
            try:
                data.update(self.source.read_chunks(list(chunks.items()), root))
            except DamagedChunksError as exc:
                raise exc.naming(sorted(loc.path for loc, r in wanted if exc.chunks & {
                    d for d, _ in iter_chunks(r.chunks, r.digest, r.size)})) from None
        out = {}
        for r in records:
            content = b"".join(data[d] for d, _ in iter_chunks(r.chunks, r.digest, r.size))
            if not file_matches(content, r.digest):
                raise RegistryError(f"{self.url}: a file assembled from verified chunks does not match its digest "
                                    f"{r.digest.hex()}")
            out[r.digest] = content
        return out

    def fetch(self, files: list[tuple[str, FileRecord]], root: bytes, progress: Progress | None = None,
              on_arrival: Callable[[], None] | None = None) -> FetchResult:
        """Download files into the reader's cache (what it lacks), verified."""
        if (imported := self._import_roots.get(root)) is not None:
            return imported[0].fetch(files, imported[1], progress, on_arrival)
        return self.source.fetch([r for _, r in files], [root], progress, on_arrival)

    def read_whole(self, locs: list[Located]) -> dict[str, bytes]:
        """Whole files (path -> content): Git files from Git, what the cache holds from there,
        the rest read straight into memory with one planned batch (see read_files)."""
        out: dict[str, bytes] = {}
        wanted: dict[str, tuple[Located, FileRecord]] = {}
        for loc in locs:
            if loc.meta is None:
                out[loc.path] = self.git_bytes(loc.target)
                continue
            if (src := self.imported(loc)) is not None:
                out[loc.path] = src[0].read_whole([src[1]])[src[1].path]
                continue
            rec = self.record(loc)
            if not isinstance(rec, FileRecord):
                raise DirectoryPathError(f"{loc.path}: a directory, not a file")
            if self.cache.has_file(rec.digest):
                out[loc.path] = self.cache.file_path(rec.digest).read_bytes()
            else:
                wanted[loc.path] = (loc, self.with_chunks(loc, rec))  # located per root by read_files
        got = self.read_files(list(wanted.values())) if wanted else {}
        for path, (_, rec) in wanted.items():
            out[path] = got[rec.digest]
        return out

    def prefetch(self, locs: list[Located]) -> None:
        """Bring these tracked files into the reader's cache (what it lacks), one planned fetch
        per tracked path; damaged files fail naming them."""
        by_root: dict[bytes, list[tuple[str, FileRecord]]] = {}
        for loc in locs:
            if loc.meta is None:
                continue
            if (src := self.imported(loc)) is not None:
                src[0].prefetch([src[1]])
                continue
            rec = self.record(loc)
            if not isinstance(rec, FileRecord) or self.cache.has_file(rec.digest):
                continue
            by_root.setdefault(loc.meta.digest, []).append((loc.path, self.with_chunks(loc, rec)))  # fetch locates
        names: dict[bytes, str] = {}
        for root, files in by_root.items():
            names.update((r.digest, p) for p, r in files)
            res = self.fetch(files, root)
            if res.damaged:
                from fastreg.transfer.fetch import damage_error

                raise damage_error(res.damaged, lambda d: names.get(d, d.hex()), res.files)


def _side_files(reader: FastregReader, target: str, meta: metafile.Metafile) -> dict[str, FileRecord]:
    """{path inside: record without chunks} of a tracked path at one side of a diff."""
    imported = reader.imported_identities(target)
    if imported is None:
        if meta.kind == "file":
            return {"": FileRecord(meta.size, meta.digest, b"", meta.executable)}
        return dict(tree.walk(reader.trees, meta.digest))
    return {rel: FileRecord(size or 0, digest, b"", executable) for rel, (digest, size, executable) in imported.items()}


def _listed(rec: tree.Record) -> Listed:
    if isinstance(rec, DirRecord):
        return Listed("dir", rec.size, rec.files)
    return Listed("file", rec.size)


class _Trees:
    def __init__(self, reader: FastregReader) -> None:
        self.reader = reader
        self.memo = tree.NodeMemo()

    def get_tree(self, digest: bytes) -> bytes:
        cache = self.reader.cache
        if cache.tree_path(digest).exists():
            return cache.get_tree(digest)
        return self.reader.source.tree_node(digest)

    def put_tree(self, data: bytes, digest_size: int = CURRENT) -> bytes:
        return self.reader.cache.put_tree(data, digest_size)


class ChunkedFile(Positioned, io.RawIOBase):
    """A registry file read by ranges: a read fetches the chunks its range touches (neighbours
    coalesced into one ranged read, each verified), found by bisecting the chunk offsets. The
    chunks read stay while the file is open (the last few only, for a file above KEEP_LIMIT);
    once every chunk of a file up to KEEP_LIMIT has been read, the file is stored in the cache
    (verified against its digest), so the next open is local."""

    def __init__(self, reader: FastregReader, rec: FileRecord, root: bytes, path: str) -> None:
        self._reader = reader
        self.rec = rec
        self.path = path  # in the registry, for messages
        self._root = root
        self._chunks = iter_chunks(rec.chunks, rec.digest, rec.size)
        self._starts = list(itertools.accumulate([0] + [n for _, n in self._chunks]))[:-1]
        self._size = rec.size
        self._pos = 0
        self._got: dict[int, bytes] = {}
        self._keep = rec.size <= KEEP_LIMIT
        self.kept = False

    @property
    def size(self) -> int:
        return self._size

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file."""
        end = min(end, self._size)
        if start >= end:
            return b""
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        last = max(0, bisect.bisect_right(self._starts, end - 1) - 1)
        wanted = [i for i in range(first, last + 1) if i not in self._got]
        if wanted:
            try:
                got = self._reader.source.read_chunks([self._chunks[i] for i in wanted], self._root)
            except DamagedChunksError as exc:
                raise exc.naming([self.path]) from None
            if not self._keep:
                for i in list(self._got)[: max(0, len(self._got) + len(wanted) - _RECENT)]:
                    del self._got[i]
            for i in wanted:
                self._got[i] = got[self._chunks[i][0]]
        data = b"".join(self._got[i] for i in range(first, last + 1))
        base = self._starts[first]
        if self._keep and not self.kept and len(self._got) == len(self._chunks):
            self._store()
        return data[start - base : end - base]

    def readinto(self, b: Any) -> int:
        """At most READ_AHEAD bytes (or the rest of the chunk at the position) per call: a
        buffered reader asks for its whole buffer, a reader that seeks around wants little."""
        at = bisect.bisect_right(self._starts, self._pos) - 1
        chunk_end = self._starts[at] + self._chunks[at][1] if at >= 0 and self._chunks else self._size
        want = min(len(b), max(READ_AHEAD, chunk_end - self._pos))
        data = self.read_range(self._pos, self._pos + want)
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def _store(self) -> None:
        """Every chunk is here: the whole file into the cache (once, verified)."""
        self.kept = True
        data = b"".join(self._got[i] for i in range(len(self._chunks)))
        try:
            self._reader.cache.put_bytes(data, self.rec.digest)
        except (FastregError, OSError):
            pass  # every chunk verified, the whole not (or no room): never store it, the read goes on

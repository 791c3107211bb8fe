"""One registry at one revision, read: the reader every consumer uses (get, import, update, list,
diff --repo, fastreg.api and the fastreg:// filesystem).

    reader = RegistryReader(url, rev)         # the revision resolved once: one commit
    loc = reader.locate("data/train/cats")    # the tracked path, its metafile, the path inside
    for name, rec in reader.ls(loc): ...      # tree nodes only, no data
    with reader.open(loc) as f: f.read(16)    # the chunks a read touches, verified

A registry is untrusted input: metafile paths and tree entry names are checked (no '..', no
absolute paths, no separators inside names), and every byte is verified against its digest before
anyone sees it. Its Git side is the registry's bare mirror (registry/git.py); its data comes from
a `DataSource`, which today is the registry's default fastreg remote (`FastregSource`) and is
the one thing a second registry kind replaces. The transfer engine sits behind the source; no
caller of the reader sees it.
"""

from __future__ import annotations

import bisect
import io
import itertools
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal, Protocol

from fastreg.chunking import iter_chunks
from fastreg.errors import (
    DirectoryPathError,
    FastregError,
    MetafileError,
    MissingPathError,
    NoRemoteError,
    PathError,
    RegistryError,
)
from fastreg.objects import metafile, tree
from fastreg.objects.digest import digest_bytes
from fastreg.objects.tree import DirRecord, FileRecord
from fastreg.plan import Location
from fastreg.progress import Progress
from fastreg.registry.mirror import Mirror, Resolved, user_cache_dir
from fastreg.repo import remotes
from fastreg.repo.cache import Cache
from fastreg.storage.base import Positioned
from fastreg.transfer.fetch import FetchResult
from fastreg.transfer.session import RemoteSession

#: A file read whole through open() is kept in the cache when it is at most this big (its chunks
#: are held while the file is open until then); bigger files keep only the last few chunks.
KEEP_LIMIT = 64 << 20
_RECENT = 8  # chunks a big file keeps while it is open
READ_AHEAD = 256 << 10  # bytes a raw read fetches past the position at most (neighbours coalesced)
LOCATE_BY_GIT = 8  # locate() calls that ask Git for each path's metafiles (then: the names, once)


def clean_path(path: str) -> str:
    p = PurePosixPath(path.strip())
    if p.is_absolute() or any(part in ("..", "") for part in p.parts) or str(p) in (".", ""):
        raise PathError(f"{path!r}: give a relative path inside the registry, without '..'")
    return p.as_posix()


def safe_name(name: str, where: str) -> None:
    """tree.name_problem, the rule add records names by, as a reader's error."""
    problem = tree.name_problem(name)
    if problem is not None:
        raise RegistryError(f"registry tree {where} has an entry fastreg never records ({problem}); "
                            "refusing to write it")


def user_cache() -> Cache:
    """The user-level cache get, list and the Python API read into. Output of get is an
    ordinary, writable file: reflink where the filesystem can, else a copy."""
    cache = Cache(user_cache_dir() / "cache", ("reflink", "copy"))
    cache.ensure()
    return cache


@dataclass(frozen=True, slots=True)
class Located:
    """What PATH is in the registry at a commit."""

    target: str  # the tracked path (or the git file)
    meta: metafile.Metafile | None  # None: a plain Git file
    subpath: str | None  # inside a tracked directory

    @property
    def path(self) -> str:
        return self.target + (f"/{self.subpath}" if self.subpath else "")


@dataclass(frozen=True, slots=True)
class Materials:
    """What a located path is made of: every file to materialize as (path relative to the
    output, '' for a single file; record), and the kind, digest, size and file count they form."""

    files: list[tuple[str, FileRecord]]
    kind: Literal["dir", "file"]
    digest: bytes
    size: int
    count: int
    folders: tuple[str, ...] = ()  # folders of the tree with no file in them (made too)

    @staticmethod
    def single(rec: FileRecord) -> Materials:
        return Materials([("", rec)], "file", rec.digest, rec.size, 1)


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


@dataclass(frozen=True, slots=True)
class Listed:
    """What a listing shows of a path inside tracked data: its kind, its size (None when the
    registry's metadata does not say, as a DVC manifest does not) and, for a folder, its files."""

    kind: Literal["file", "dir"]
    size: int | None
    files: int | None = None


def open_reader(url: str, rev: str | None, cache: Cache | None = None, jobs: int | None = None) -> RegistryReader:
    """The reader for the registry at url and rev: a fastreg registry (it has `.fastreg/`), or a
    DVC project read as one (it has `.dvc/` and no `.fastreg/`: registry/dvc/)."""
    git = Mirror(url)
    resolved = git.resolve(rev)
    config, dvc_config = git.read_many(resolved.commit, [".fastreg/config", ".dvc/config"])
    if config is None and (dvc_config is not None or git.kind(resolved.commit, ".dvc") == "tree"):
        from fastreg.registry.dvc.reader import DvcReader

        return DvcReader(git, resolved, dvc_config or b"", cache, jobs)
    return RegistryReader(url, rev, cache, jobs, resolved=(git, resolved, config))


class RegistryReader:
    """A registry at one commit (the revision is resolved once). `cache`: where tree nodes and
    files read whole are kept (the user cache by default; a project's for import and update).
    The data source is opened on first need and closed by close() (or the with-block). Use
    open_reader(), which picks the reader for the registry's kind."""

    kind = "fastreg"

    def __init__(self, url: str, rev: str | None, cache: Cache | None = None, jobs: int | None = None,
                 resolved: tuple[Mirror, Resolved, bytes | None] | None = None) -> None:
        if resolved is None:
            self.git = Mirror(url)
            self.resolved: Resolved = self.git.resolve(rev)
            raw = self.git.read(self.resolved.commit, ".fastreg/config")
        else:
            self.git, self.resolved, raw = resolved
        try:
            self.config: dict[str, Any] = tomllib.loads(raw.decode()) if raw else {}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self.url}: its .fastreg/config is not valid TOML ({exc})") from None
        self._cache = cache
        self.jobs = jobs
        self._source: DataSource | None = None
        self._metafiles: dict[str, metafile.Metafile] | None = None
        self._locates = 0
        self._trees: _Trees | None = None
        self._metafile_names: frozenset[str] | None = None  # of the commit's metafiles (see locate)
        self._metafile_bytes: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()

    @property
    def url(self) -> str:
        return self.resolved.url

    @property
    def commit(self) -> str:
        return self.resolved.commit

    @property
    def rev(self) -> str | None:
        return self.resolved.rev

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            self._cache = user_cache()
        return self._cache

    # -- the Git side ----------------------------------------------------------------------------
    def git_bytes(self, path: str) -> bytes:
        return self.git.read(self.commit, path) or b""

    def ls_git(self, base: str = "", recursive: bool = True) -> list[tuple[str, str, int]]:
        """(path, "blob"|"tree", size) of the registry's Git files under base."""
        return self.git.ls_tree(self.commit, base, recursive=recursive)

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

    def locate_in_git(self, path: str) -> Located:
        """path as a plain Git file of the commit (a Git folder or nothing there: an error)."""
        kind = self.git.kind(self.commit, path)
        if kind == "blob":
            return Located(path, None, None)
        if kind == "tree":
            raise DirectoryPathError(f"{path}: a Git directory in {self.url}, not tracked data; get its files one "
                                     "by one or the tracked paths inside it (see `fastreg list`)")
        raise MissingPathError(f"{path}: not found in {self.url} at {self.rev or 'the default branch'} "
                               f"({self.commit[:10]})")

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
        return remotes.open_session(remote, base, self.jobs, self.cache, user_cache_dir())

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

    def stat(self, loc: Located) -> Listed:
        """What a located path inside tracked data is, for a listing (no data read)."""
        return _listed(self.record(loc))

    def listdir(self, loc: Located) -> list[tuple[str, Listed]]:
        """The entries of a tracked folder (name, what it is), tree nodes only."""
        return [(name, _listed(rec)) for name, rec in self.ls(loc)]

    def listall(self, loc: Located) -> list[tuple[str, Listed]]:
        """Every file under a tracked folder (path relative to it, what it is), tree nodes only."""
        return [(rel, _listed(rec)) for rel, rec in self.walk(loc)]

    def materials(self, loc: Located, progress: Progress | None = None) -> Materials:
        """The files of a tracked path (or of a file or folder inside one), reading only the tree
        nodes it needs, with the source ready to fetch them (progress: for a source that must
        bring the data to know what it is made of; a fastreg registry never does)."""
        meta = loc.meta
        assert meta is not None
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
            return _BytesRaw(self.git_bytes(loc.target))
        rec = self.file_record(loc)
        if self.cache.has_file(rec.digest):
            return io.FileIO(self.cache.file_path(rec.digest), "rb")
        return ChunkedFile(self, rec, loc.meta.digest)

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
            data.update(self.source.read_chunks(list(chunks.items()), root))
        out = {}
        for r in records:
            content = b"".join(data[d] for d, _ in iter_chunks(r.chunks, r.digest, r.size))
            if digest_bytes(content) != r.digest:
                raise RegistryError(f"{self.url}: a file assembled from verified chunks does not match its digest "
                                    f"{r.digest.hex()}")
            out[r.digest] = content
        return out

    def fetch(self, files: list[tuple[str, FileRecord]], root: bytes, progress: Progress | None = None,
              on_arrival: Callable[[], None] | None = None) -> FetchResult:
        """Download files into the reader's cache (what it lacks), verified."""
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


def _listed(rec: tree.Record) -> Listed:
    if isinstance(rec, DirRecord):
        return Listed("dir", rec.size, rec.files)
    return Listed("file", rec.size)


class _Trees:
    def __init__(self, reader: RegistryReader) -> None:
        self.reader = reader
        self.memo = tree.NodeMemo()

    def get_tree(self, digest: bytes) -> bytes:
        cache = self.reader.cache
        if cache.tree_path(digest).exists():
            return cache.get_tree(digest)
        return self.reader.source.tree_node(digest)

    def put_tree(self, data: bytes) -> bytes:
        return self.reader.cache.put_tree(data)


class _BytesRaw(Positioned, io.RawIOBase):
    """A plain Git file's bytes as a raw file."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._size = len(data)
        self._pos = 0

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class ChunkedFile(Positioned, io.RawIOBase):
    """A registry file read by ranges: a read fetches the chunks its range touches (neighbours
    coalesced into one ranged read, each verified), found by bisecting the chunk offsets. The
    chunks read stay while the file is open (the last few only, for a file above KEEP_LIMIT);
    once every chunk of a file up to KEEP_LIMIT has been read, the file is stored in the cache
    (verified against its digest), so the next open is local."""

    def __init__(self, reader: RegistryReader, rec: FileRecord, root: bytes) -> None:
        self._reader = reader
        self.rec = rec
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
            got = self._reader.source.read_chunks([self._chunks[i] for i in wanted], self._root)
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

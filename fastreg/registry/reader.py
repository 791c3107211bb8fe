"""One registry at one revision, read: the interface every consumer uses (get, import, update,
list, diff --repo, fastreg.api, the fastreg:// filesystem, the web view), and the reader for the
registry's kind.

    reader = open_reader(url, rev)            # the revision resolved once: one commit
    loc = reader.locate("data/train/cats")    # the tracked path, its metafile, the path inside
    for name, what in reader.listdir(loc): ...  # metadata only, no data
    with reader.open(loc) as f: f.read(16)    # the bytes a read touches, verified

`Reader` is the contract; `open_reader` (registry/kinds.py) picks its implementation: a fastreg registry
(registry/fastreg_reader.py: metafiles, tree nodes, a fastreg remote) or a DVC project read as
one (registry/dvc_reader.py: .dvc files and dvc.lock, a DVC remote). Neither subclasses the
other; what they share is the Git side, `RegistryCommit` (the bare mirror, the resolved commit,
the cache data is read into). A consumer never asks which kind it holds, except to say it in a
message (`kind`).

A registry is untrusted input: metafile paths and tree entry names are checked (no '..', no
absolute paths, no separators inside names: tree.name_problem), and every byte is verified
against its digest before anyone sees it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from fastreg import userdirs
from fastreg.errors import DirectoryPathError, MissingPathError, PathError, RegistryError
from fastreg.objects import metafile, tree
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.registry.mirror import Mirror, Resolved
from fastreg.repo.cache import Cache
from fastreg.storage.base import Positioned

if TYPE_CHECKING:
    from fastreg.repo.diff import FileChange
    from fastreg.transfer.fetch import FetchResult
    from fastreg.transfer.session import RemoteSession

IMPORT_DEPTH = 8  # imports of imports followed at most

MetaPair = tuple[str, "metafile.Metafile | None", "metafile.Metafile | None"]  # path, side a, side b


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
    cache = Cache(userdirs.data_cache(), ("reflink", "copy"))
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


@dataclass(frozen=True, slots=True)
class Listed:
    """What a listing shows of a path inside tracked data: its kind, its size (None when the
    registry's metadata does not say, as a DVC manifest does not) and, for a folder, its files."""

    kind: Literal["file", "dir"]
    size: int | None
    files: int | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """What a file's bytes are, from metadata only: its size (None when the registry does not
    record it) and its content digest as shown (fastreg's XXH3-128 hex, "md5:" + hex for a DVC
    project's file, None for a plain Git file)."""

    size: int | None
    digest: str | None


class Reader(Protocol):
    """What a consumer needs from any registry at one commit."""

    kind: str  # "fastreg" or "dvc": for messages only
    git: Mirror
    chain: tuple[tuple[str, str], ...]  # the imports that led to this reader: (url, commit)

    @property
    def url(self) -> str: ...

    @property
    def commit(self) -> str: ...

    @property
    def rev(self) -> str | None: ...

    @property
    def cache(self) -> Cache: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None: ...

    def close(self) -> None: ...

    # -- what is there (metadata only) ----------------------------------------------------------
    def metafiles(self) -> dict[str, metafile.Metafile]:
        """Every tracked path of the commit and its metafile (a DVC out's is made from it)."""
        ...

    def locate(self, path: str) -> Located:
        """What path is: a tracked path, a file or folder inside one, or a plain Git file."""
        ...

    def hidden(self, path: str) -> bool:
        """A Git file that is the registry's own bookkeeping, not shown by list or fastreg://."""
        ...

    def git_bytes(self, path: str) -> bytes: ...

    def ls_git(self, base: str = "", recursive: bool = True) -> list[tuple[str, str, int]]: ...

    def provenance(self, target: str) -> metafile.ImportSource | None:
        """Where a tracked path's data was imported from (a fastreg import's `[import]` table, a
        DVC import stage's `repo:` dep), None for the registry's own data."""
        ...

    def imported(self, loc: Located) -> tuple[Reader, Located] | None: ...

    def known(self, loc: Located) -> Listed:
        """What the metadata says of a tracked path itself (its metafile, its .dvc or lock entry),
        reading no tree node, manifest or data: None where it does not say."""
        ...

    def stat(self, loc: Located) -> Listed: ...

    def listdir(self, loc: Located) -> list[tuple[str, Listed]]: ...

    def listall(self, loc: Located) -> list[tuple[str, Listed]]: ...

    def identity(self, loc: Located) -> Identity: ...

    def diff(self, newer: Reader, pairs: list[MetaPair], within: list[str] | None) -> list[FileChange]:
        """The file changes from this commit to newer's (same registry, same kind) at the given
        tracked paths, from metadata only."""
        ...

    # -- data ---------------------------------------------------------------------------------
    def open(self, loc: Located) -> io.RawIOBase:
        """A located file as a raw, seekable, read-only file, verified as it is read."""
        ...

    def read_whole(self, locs: list[Located]) -> dict[str, bytes]: ...

    def prefetch(self, locs: list[Located]) -> None:
        """Bring these files into the reader's cache (what it lacks)."""
        ...

    def materials(self, loc: Located, progress: Progress | None = None) -> Materials:
        """The files of a located tracked path as fastreg records, ready to fetch into the cache."""
        ...

    def fetch(self, files: list[tuple[str, FileRecord]], root: bytes, progress: Progress | None = None,
              on_arrival: Callable[[], None] | None = None) -> FetchResult:
        """Download what the cache lacks of materials' files, verified."""
        ...

    def import_source(self, sources: list[metafile.ImportSource]) -> RemoteSession | None:
        """For a teammate's pull of imports from this commit: a session on the remote to fetch
        their data from, or None once it is in the reader's cache already (a plain Git file, a
        DVC project's data: brought and converted here)."""
        ...


class RegistryCommit:
    """The Git side both kinds share: the registry's bare mirror, the commit its revision resolved
    to (once), the cache data is read into (the user cache by default; a project's for import and
    update), and the commit's plain Git files."""

    kind = "registry"

    def __init__(self, git: Mirror, resolved: Resolved, cache: Cache | None, jobs: int | None) -> None:
        self.git = git
        self.resolved = resolved
        self._cache = cache
        self.jobs = jobs
        self._sources: dict[str, Reader] = {}  # the source registries of imported paths, by path
        self._sources_lock = threading.Lock()
        self.chain: tuple[tuple[str, str], ...] = ()  # the imports that led here: (url, commit)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._sources_lock:
            sources, self._sources = list(self._sources.values()), {}
        for reader in sources:
            reader.close()

    def imported(self, loc: Located) -> tuple[Reader, Located] | None:
        """For a path of imported data (see provenance), the source registry's reader at rev_lock
        and the path there: an import's bytes are its source's, never on this registry's remote.
        Imports of imports are followed, IMPORT_DEPTH deep at most; None for the registry's own."""
        if loc.meta is None:
            return None
        src = self.provenance(loc.target)
        if src is None:
            return None
        with self._sources_lock:
            reader = self._sources.get(loc.target)
            if reader is None:
                url = src.url
                if "://" not in url and not PurePosixPath(url).is_absolute() and "://" not in self.url:
                    url = str((Path(self.url) / url).resolve())  # relative to the importing project
                here = (self.url, self.commit)
                if len(self.chain) >= IMPORT_DEPTH:
                    raise RegistryError(f"{self.url}: {loc.target} is an import of an import ... more than "
                                        f"{IMPORT_DEPTH} deep; fastreg follows that many")
                if any(u == url and c.startswith(src.rev_lock[:10]) for u, c in (*self.chain, here)):
                    raise RegistryError(f"{self.url}: {loc.target} imports from {url} at {src.rev_lock[:10]}, which "
                                        "imports it back (a cycle)")
                from fastreg.registry.kinds import open_reader

                reader = open_reader(url, src.rev_lock, self.cache, self.jobs)
                reader.chain = (*self.chain, here)
                self._sources[loc.target] = reader
        inner = src.path + (f"/{loc.subpath}" if loc.subpath else "")
        return reader, reader.locate(inner)

    def imported_identities(self, target: str) -> dict[str, tuple[bytes, int | None, bool]] | None:
        """{path inside ('' for a file): (digest, size if known, executable)} of an imported
        tracked path, from its source's metadata (no data): what diff compares; None for the
        registry's own data."""
        meta = self.metafiles()[target]
        src = self.imported(Located(target, meta, None))
        if src is None:
            return None
        if meta.kind == "file":
            return {"": (meta.digest, meta.size, meta.executable)}
        reader, inner = src
        own = getattr(reader, "identities", None)  # a DVC project's, all from one manifest
        if own is not None and inner.subpath is None:
            return dict(own(inner.target))
        out: dict[str, tuple[bytes, int | None, bool]] = {}
        for rel, listed in reader.listall(inner):
            ident = reader.identity(reader.locate(f"{inner.path}/{rel}"))
            assert ident.digest is not None
            out[rel] = (bytes.fromhex(ident.digest.removeprefix("md5:")), listed.size, False)
        return out

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

    def git_bytes(self, path: str) -> bytes:
        return self.git.read(self.commit, path) or b""

    def metafiles(self) -> dict[str, metafile.Metafile]:
        raise NotImplementedError

    def provenance(self, target: str) -> metafile.ImportSource | None:
        meta = self.metafiles().get(target)
        return meta.source if meta is not None else None

    def ls_git(self, base: str = "", recursive: bool = True) -> list[tuple[str, str, int]]:
        """(path, "blob"|"tree", size) of the registry's Git files under base."""
        return self.git.ls_tree(self.commit, base, recursive=recursive)

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

    def open_git(self, loc: Located) -> io.RawIOBase:
        return _BytesRaw(self.git_bytes(loc.target))

    def git_file_into_cache(self, loc: Located) -> tuple[bytes, int]:
        """A plain Git file of the registry into the reader's cache; its digest and size."""
        data = self.git_bytes(loc.target)
        return self.cache.put_bytes(data), len(data)


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

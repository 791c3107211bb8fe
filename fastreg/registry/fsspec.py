"""A read-only fsspec filesystem over a registry at one revision: `fastreg://PATH`.

    import fsspec, pandas as pd
    with fsspec.open("fastreg://use-cases/cats-dogs/data/train/cats/cat.0001.jpg", repo=URL, rev="v1") as f: ...
    pd.read_csv("fastreg://data/table.csv", storage_options={"repo": URL})
    fs = fsspec.filesystem("fastreg", repo=URL, rev="cats-dogs-v1"); fs.find("use-cases/cats-dogs")

Registered for the protocol `fastreg` through fsspec's entry point, so user code needs no import
of fastreg. The registry's Git files are visible too (as with `fastreg get`); tracked data
appears as its files and folders. Listing reads tree nodes, never data; a tree node is read once
per instance, only when a path under it is asked for. `open` gives a seekable file that fetches
only the chunks a read touches (coalesced into few ranged GETs per read-ahead block, verified);
a file read whole is kept in the user cache, so a second open is local. `cat` of many paths and
`get` go through the parallel fetch pipeline: one planned batch of coalesced ranged GETs.

The revision is resolved once, when the filesystem is made: one instance always shows one commit.
"""

from __future__ import annotations

import datetime
import errno
import io
import os
import warnings
import weakref
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from fastreg.errors import MissingDataError, MissingPathError, RegistryError, StorageError
from fastreg.objects import metafile
from fastreg.registry.fastreg_reader import ChunkedFile
from fastreg.registry.kinds import open_reader
from fastreg.registry.reader import Listed, Located, Reader

#: Bytes read past what a read asks for. Small, because chunks (~64 KiB) already come whole and
#: stay while the file is open: a reader that jumps around (Parquet column chunks, an image
#: header) pays for little it does not use.
READ_AHEAD = 256 << 10


class FastregFileSystem(AbstractFileSystem):  # type: ignore[misc]
    protocol = "fastreg"
    root_marker = ""

    def __init__(self, repo: str | None = None, rev: str | None = None, jobs: int | None = None,
                 **kwargs: Any) -> None:
        if not repo:
            raise ValueError("the fastreg filesystem needs the registry: fsspec.filesystem(\"fastreg\", repo=URL, "
                             "rev=REV) with URL any Git URL of a registry (rev: a branch, tag or commit; default: "
                             "its default branch), or storage_options={\"repo\": URL}")
        super().__init__(**kwargs)
        self.repo = repo
        self.reader = open_reader(repo, rev, jobs=jobs)
        weakref.finalize(self, _close, self.reader)
        self.rev = self.reader.commit  # pinned: one instance shows one commit
        self._time: datetime.datetime | None = None
        self._metas: dict[str, metafile.Metafile] = self.reader.metafiles()  # imports read from their source
        self._files: dict[str, int] = {}  # plain Git files: path -> size
        self._dirs: dict[str, set[str]] = {"": set()}  # Git folders: path -> child names
        for path, typ, size in self.reader.ls_git():
            if typ != "blob" or self.reader.hidden(path):
                continue
            self._files[path] = size
            self._add_to_dirs(path)
        for target in self._metas:
            self._add_to_dirs(target)

    def _add_to_dirs(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        while True:
            self._dirs.setdefault(parent, set()).add(name)
            if not parent:
                return
            parent, _, name = parent.rpartition("/")

    # -- paths ---------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        text: str = str(path)
        if text.startswith("fastreg://"):
            text = text[len("fastreg://"):]
        elif text.startswith("fastreg:"):
            text = text[len("fastreg:"):]
        return text.strip("/")

    def _located(self, path: str) -> Located | None:
        """Where path is in the tracked data (from the metafiles read once), or None."""
        if path in self._metas:
            return Located(path, self._metas[path], None)
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            target = "/".join(parts[:i])
            meta = self._metas.get(target)
            if meta is not None:
                return Located(target, meta, "/".join(parts[i:])) if meta.kind == "dir" else None
        return None

    def _record(self, path: str) -> tuple[Located, Listed] | None:
        loc = self._located(path)
        if loc is None:
            return None
        try:
            return loc, self.reader.stat(loc)
        except MissingPathError:
            return None

    # -- listing (trees only, no data) -------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path in self._files:
            return {"name": path, "size": self._files[path], "type": "file"}
        found = self._record(path)
        if found is not None:
            return self._entry(path, found[1])
        if path in self._dirs:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def modified(self, path: str) -> datetime.datetime:
        """The time of the commit this filesystem shows (every path of one commit has it): what a
        version of the data was published at, for tools that ask (DuckDB's read_parquet)."""
        self.info(path)  # FileNotFoundError for a path that is not there
        if self._time is None:
            self._time = datetime.datetime.fromtimestamp(self.reader.git.commit_time(self.rev), datetime.UTC)
        return self._time

    def created(self, path: str) -> datetime.datetime:
        return self.modified(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        found = self._record(path) if path not in self._dirs else None
        if found is not None:
            loc, rec = found
            if rec.kind == "dir":
                try:
                    listing = self.reader.listdir(loc)
                except (StorageError, MissingDataError, RegistryError) as exc:
                    raise UnreadableFolderError(errno.EIO, f"fastreg://{path}: {exc.message}") from None
                entries = [self._entry(f"{path}/{name}", child) for name, child in listing]
            else:
                entries = [self._entry(path, rec)]
        elif path in self._dirs:
            entries = [self.info(f"{path}/{name}" if path else name) for name in sorted(self._dirs[path])]
        elif path in self._files:
            entries = [self.info(path)]
        else:
            raise FileNotFoundError(path)
        return entries if detail else [e["name"] for e in entries]

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True, on_error: Any = "omit",
             **kwargs: Any) -> Any:
        """fsspec's walk (so find, du, glob), listing all that can be read: a tracked folder whose
        contents the remote cannot give (UnreadableFolderError from ls) is left out and named in
        one UnreadableWarning at the end, never dropped silently (on_error="raise" raises it)."""
        if on_error != "omit":
            yield from super().walk(path, maxdepth, topdown, on_error, **kwargs)
            return
        unreadable: list[str] = []

        def note(exc: Exception) -> None:
            if isinstance(exc, UnreadableFolderError):
                unreadable.append(str(exc.strerror))

        yield from super().walk(path, maxdepth, topdown, note, **kwargs)
        if unreadable:
            warnings.warn(UnreadableWarning(f"{len(unreadable)} tracked folder{'s' if len(unreadable) != 1 else ''} "
                                            f"could not be listed (the rest is): {' | '.join(unreadable)}"),
                          stacklevel=2)

    @staticmethod
    def _entry(path: str, rec: Listed) -> dict[str, Any]:
        return {"name": path, "size": rec.size, "type": "directory" if rec.kind == "dir" else "file"}

    # -- reading -------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"fastreg://{path}: registry files are read-only (mode {mode!r})")
        path = self._strip_protocol(path)
        if path in self._files:
            return _GitFile(self.reader.git_bytes(path))
        found = self._record(path)
        if found is None:
            raise FileNotFoundError(path)
        loc, rec = found
        if rec.kind == "dir":
            raise IsADirectoryError(path)
        raw = self.reader.open(loc)
        if isinstance(raw, ChunkedFile):
            return RegistryFile(self, path, raw, block_size or READ_AHEAD, cache_options)
        return _CachedFile(raw)  # the caller closes it

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any) -> Any:
        """Many files at once: what the user cache lacks is read straight into memory with one
        planned batch of ranged GETs (neighbouring chunks coalesced, `jobs` in parallel), each
        chunk and each file verified; the rest comes from the cache or Git."""
        paths = self.expand_path(path, recursive=recursive)
        files = [p for p in paths if not self.isdir(p)]
        wanted: dict[str, Located] = {}
        for p in files:
            found = self._record(p) if p not in self._files else None
            if found is not None and found[1].kind == "file":
                wanted[p] = found[0]
        got = self.reader.read_whole(list(wanted.values())) if wanted else {}
        out: dict[str, Any] = {}
        for p in files:
            try:
                if p in wanted:
                    out[p] = got[wanted[p].path]
                    continue
                with self._open(p) as f:
                    out[p] = f.read()
            except (FileNotFoundError, MissingPathError) as exc:
                if on_error == "raise":
                    raise
                if on_error == "return":
                    out[p] = exc
        if len(paths) == 1 and paths[0] == self._strip_protocol(path) and not self.isdir(paths[0]):
            return out[paths[0]]
        return out

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, **kwargs: Any) -> None:
        """Download files or folders: one planned fetch for all of them, then copies out of the
        user cache (each verified), written under temp names and renamed."""
        sources = self.expand_path(rpath, recursive=recursive, maxdepth=kwargs.get("maxdepth"))
        self._prefetch([p for p in sources if not self.isdir(p)])
        super().get(rpath, lpath, recursive=recursive, **kwargs)

    def get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        parent = os.path.dirname(lpath)
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = f"{lpath}.fastreg-get-{os.urandom(4).hex()}"
        try:
            with self._open(rpath) as src, open(tmp, "wb") as dst:
                while block := src.read(4 << 20):
                    dst.write(block)
            os.replace(tmp, lpath)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _prefetch(self, paths: list[str]) -> None:
        """Bring the tracked files among paths into the user cache with one planned fetch."""
        locs = []
        for p in paths:
            found = self._record(self._strip_protocol(p))
            if found is not None and found[1].kind == "file":
                locs.append(found[0])
        self.reader.prefetch(locs)


class UnreadableFolderError(OSError):
    """A tracked folder whose contents could not be read from the registry's remote."""


class UnreadableWarning(UserWarning):
    """Some tracked folders were left out of a listing: their contents could not be read."""


class _GitFile(io.BytesIO):
    """A plain Git file's bytes; `size` as fsspec's readers expect of every file object
    (`cat_file(start=-N)`, `read_block`, `tail`)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)


class _CachedFile(io.BufferedReader):
    """A file the user cache holds whole, read from there; with `size`, as _GitFile."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__(raw)
        self.size = os.fstat(self.fileno()).st_size


class RegistryFile(AbstractBufferedFile):  # type: ignore[misc]
    """fsspec's buffered file over the reader's ChunkedFile: a read fetches the chunks its block
    touches (see registry/fastreg_reader.py); fsspec's read-ahead cache keeps the last block."""

    def __init__(self, fs: FastregFileSystem, path: str, raw: ChunkedFile, block_size: int,
                 cache_options: dict[str, Any] | None) -> None:
        self.raw = raw
        super().__init__(fs, path, mode="rb", block_size=block_size, cache_type="readahead",
                         cache_options=cache_options or {}, size=raw.size)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.raw.read_range(start, end)


def _close(reader: Reader) -> None:
    try:
        reader.close()
    except Exception:  # closing at interpreter exit: nothing left to report to
        pass

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

import bisect
import io
import os
import threading
import weakref
from typing import Any

import xxhash
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from fastreg.chunking import iter_chunks
from fastreg.errors import IntegrityError, MissingPathError
from fastreg.objects import metafile as mf
from fastreg.objects import tree as tr
from fastreg.objects.tree import DirRecord, FileRecord
from fastreg.registry import ops as reg
from fastreg.transfer.session import RemoteSession

_HIDDEN = (".gitignore",)
#: Bytes read past what a read asks for. Small, because chunks (~64 KiB) already come whole and
#: stay while the file is open: a reader that jumps around (Parquet column chunks, an image
#: header) pays for little it does not use.
READ_AHEAD = 256 << 10  # Git files that only serve the registry's own bookkeeping


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
        self.registry = reg.Registry(repo, rev)
        self.rev = self.registry.commit  # pinned: one instance shows one commit
        self.jobs = jobs
        commit = self.registry.commit
        self._metas: dict[str, mf.Metafile] = {
            t: m for t, m in self.registry.git.metafiles(commit).items() if m.source is None}
        self._files: dict[str, int] = {}  # plain Git files: path -> size
        self._dirs: dict[str, set[str]] = {"": set()}  # Git folders: path -> child names
        for path, typ, size in self.registry.git.ls_tree(commit, "", recursive=True):
            name = path.rpartition("/")[2]
            if typ != "blob" or path.startswith(".fastreg/") or name in _HIDDEN or name.endswith(mf.METAFILE_SUFFIX):
                continue
            self._files[path] = size
            self._add_to_dirs(path)
        for target in self._metas:
            self._add_to_dirs(target)
        self._session: RemoteSession | None = None
        self._lock = threading.Lock()  # one event loop per session: one request stream at a time
        self._cache = reg.user_cache()

    def _add_to_dirs(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        while True:
            self._dirs.setdefault(parent, set()).add(name)
            if not parent:
                return
            parent, _, name = parent.rpartition("/")

    # -- the remote, opened on first need ----------------------------------------------------
    @property
    def session(self) -> RemoteSession:
        if self._session is None:
            self._session = self.registry.session(self._cache, self.jobs)
            weakref.finalize(self, _close, self._session)
        return self._session

    @property
    def trees(self) -> tr.TreeStore:
        return _LazyNodes(self)

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

    def _tracked(self, path: str) -> tuple[str, mf.Metafile, str | None] | None:
        """(target, its metafile, path inside it or None) when path is tracked data."""
        if path in self._metas:
            return path, self._metas[path], None
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            target = "/".join(parts[:i])
            meta = self._metas.get(target)
            if meta is not None:
                return (target, meta, "/".join(parts[i:])) if meta.kind == "dir" else None
        return None

    def _record(self, path: str) -> tuple[str, mf.Metafile, tr.Record] | None:
        """The record of tracked data at path: (target, metafile, record)."""
        found = self._tracked(path)
        if found is None:
            return None
        target, meta, sub = found
        if sub is None:
            if meta.kind == "file":
                return target, meta, FileRecord(meta.size, meta.digest, b"", meta.executable)
            return target, meta, DirRecord(meta.size, meta.digest, meta.files)
        rec = tr.lookup(self.trees, meta.digest, sub)
        return None if rec is None else (target, meta, rec)

    # -- listing (trees only, no data) -------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path in self._files:
            return {"name": path, "size": self._files[path], "type": "file"}
        found = self._record(path)
        if found is not None:
            rec = found[2]
            return {"name": path, "size": rec.size, "type": "directory" if isinstance(rec, DirRecord) else "file"}
        if path in self._dirs:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        found = self._record(path) if path not in self._dirs else None
        if found is not None:
            rec = found[2]
            if isinstance(rec, DirRecord):
                entries = [self._entry(f"{path}/{name}", child) for name, child in tr.iter_dir(self.trees, rec.digest)]
            else:
                entries = [self._entry(path, rec)]
        elif path in self._dirs:
            entries = [self.info(f"{path}/{name}" if path else name) for name in sorted(self._dirs[path])]
        elif path in self._files:
            entries = [self.info(path)]
        else:
            raise FileNotFoundError(path)
        return entries if detail else [e["name"] for e in entries]

    @staticmethod
    def _entry(path: str, rec: tr.Record) -> dict[str, Any]:
        return {"name": path, "size": rec.size, "type": "directory" if isinstance(rec, DirRecord) else "file"}

    # -- reading -------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"fastreg://{path}: registry files are read-only (mode {mode!r})")
        path = self._strip_protocol(path)
        if path in self._files:
            return _GitFile(self._git_bytes(path))
        found = self._record(path)
        if found is None:
            raise FileNotFoundError(path)
        target, meta, rec = found
        if isinstance(rec, DirRecord):
            raise IsADirectoryError(path)
        local = self._cache.file_path(rec.digest)
        if self._cache.has_file(rec.digest):
            return _CachedFile(local)  # the caller closes it
        return RegistryFile(self, path, target, meta, rec, block_size or READ_AHEAD, cache_options)

    def _git_bytes(self, path: str) -> bytes:
        return self.registry.git.read(self.registry.commit, path) or b""

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any) -> Any:
        """Many files at once: what the user cache lacks is read straight into memory with one
        planned batch of ranged GETs (neighbouring chunks coalesced, `jobs` in parallel), each
        chunk and each file verified; the rest comes from the cache or Git."""
        paths = self.expand_path(path, recursive=recursive)
        files = [p for p in paths if not self.isdir(p)]
        wanted: dict[str, FileRecord] = {}
        roots: set[bytes] = set()
        for p in files:
            found = self._record(p) if p not in self._files else None
            if found is None:
                continue
            _, meta, rec = found
            if not isinstance(rec, FileRecord) or self._cache.has_file(rec.digest):
                continue
            wanted[p] = self._with_chunks(meta) if meta.kind == "file" and rec.size else rec
            roots.add(meta.digest)
        got = self._read_files(list(wanted.values()), sorted(roots)) if wanted else {}
        out: dict[str, Any] = {}
        for p in files:
            try:
                if p in wanted:
                    out[p] = got[wanted[p].digest]
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

    def _read_files(self, records: list[FileRecord], roots: list[bytes]) -> dict[bytes, bytes]:
        """Whole files read into memory from their chunks (file digest -> content), verified."""
        chunks = {d: n for r in records for d, n in iter_chunks(r.chunks, r.digest, r.size)}
        with self._lock:
            session = self.session
            if any(not session.mirror.has(d) for d in chunks):
                session.refresh(roots)
            data = session.read_chunks(list(chunks.items()), roots)
        out = {}
        for r in records:
            content = b"".join(data[d] for d, _ in iter_chunks(r.chunks, r.digest, r.size))
            if xxhash.xxh3_128_digest(content) != r.digest:
                raise IntegrityError(f"fastreg://{self.repo}: a file assembled from verified chunks does not "
                                     f"match its digest {r.digest.hex()}")
            out[r.digest] = content
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
        records: list[FileRecord] = []
        roots: set[bytes] = set()
        for p in paths:
            found = self._record(self._strip_protocol(p))
            if found is None:
                continue
            _, meta, rec = found
            if not isinstance(rec, FileRecord):
                continue
            if meta.kind == "file" and not self._cache.has_file(rec.digest):
                rec = self._with_chunks(meta)
            if not self._cache.has_file(rec.digest):
                records.append(rec)
                roots.add(meta.digest)
        if records:
            with self._lock:
                res = self.session.fetch_files(records, sorted(roots))
            if res.damaged:
                from fastreg.transfer.fetch import damage_error

                raise damage_error(res.damaged, lambda d: f"file {d.hex()}", res.files)

    def _with_chunks(self, meta: mf.Metafile) -> FileRecord:
        """A single-file target's record with its chunk list (from the remote's file record)."""
        with self._lock:
            return self.session.fetch_record(meta.digest, meta.size)


class _GitFile(io.BytesIO):
    """A plain Git file's bytes; `size` as fsspec's readers expect of every file object
    (`cat_file(start=-N)`, `read_block`, `tail`)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)


class _CachedFile(io.BufferedReader):
    """A file the user cache holds whole, read from there; with `size`, as _GitFile."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.size = os.fstat(self.fileno()).st_size


class _LazyNodes:
    """Tree nodes from the user cache, or from the registry's remote on first use (verified)."""

    def __init__(self, fs: FastregFileSystem) -> None:
        self.fs = fs

    def get_tree(self, digest: bytes) -> bytes:
        if self.fs._cache.tree_path(digest).exists():
            return self.fs._cache.get_tree(digest)
        with self.fs._lock:
            return self.fs.session.fetch_tree_node(digest)

    def put_tree(self, data: bytes) -> bytes:
        return self.fs._cache.put_tree(data)


class RegistryFile(AbstractBufferedFile):  # type: ignore[misc]
    """A registry file read by ranges: a read fetches the chunks its block touches (one ranged
    GET per run of neighbouring chunks, verified); fsspec's read-ahead cache keeps the last block.
    Chunks read are kept while the file is open; once every chunk has been read the file is
    stored in the user cache (verified against its digest), so the next open is local."""

    def __init__(self, fs: FastregFileSystem, path: str, target: str, meta: mf.Metafile, rec: FileRecord,
                 block_size: int, cache_options: dict[str, Any] | None) -> None:
        self.target, self.meta = target, meta
        if meta.kind == "file" and rec.size and not rec.chunks:
            rec = fs._with_chunks(meta)
        self.rec = rec
        self._chunks = iter_chunks(rec.chunks, rec.digest, rec.size)
        self._starts: list[int] = []
        at = 0
        for _, length in self._chunks:
            self._starts.append(at)
            at += length
        self._got: dict[int, bytes] = {}
        self._indexed = False
        super().__init__(fs, path, mode="rb", block_size=block_size, cache_type="readahead",
                         cache_options=cache_options or {}, size=rec.size)

    def _ensure_index(self) -> None:
        """The index entries of this file's chunks: from the locator hint of the tree node
        holding it (a segment or two), else by listing the remote's index."""
        if self._indexed:
            return
        session = self.fs.session
        first = self._chunks[0][0] if self._chunks else None
        with self.fs._lock:
            if first is not None and not session.mirror.has(first):
                if self.meta.kind == "dir":
                    located = tr.locate(self.fs.trees, self.meta.digest, self.path[len(self.target) + 1:])
                    if located is not None:
                        session.refresh_from_hints([located[0]])
                else:
                    session.refresh_from_hints([self.meta.digest])
            if any(not session.mirror.has(d) for d, _ in self._chunks):
                session.refresh([self.meta.digest])
        self._indexed = True

    def _fetch_range(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        last = max(0, bisect.bisect_right(self._starts, end - 1) - 1)
        wanted = [i for i in range(first, last + 1) if i not in self._got]
        if wanted:
            self._ensure_index()
            with self.fs._lock:
                got = self.fs.session.read_chunks([self._chunks[i] for i in wanted], [self.meta.digest])
            for i in wanted:
                self._got[i] = got[self._chunks[i][0]]
        data = b"".join(self._got[i] for i in range(first, last + 1))
        base = self._starts[first]
        if len(self._got) == len(self._chunks):
            self._keep()
        return data[start - base : end - base]

    def _keep(self) -> None:
        """Every chunk is here: store the whole file in the user cache (once, verified)."""
        cache = self.fs._cache
        if cache.has_file(self.rec.digest):
            return
        data = b"".join(self._got[i] for i in range(len(self._chunks)))
        if xxhash.xxh3_128_digest(data) != self.rec.digest:
            return  # every chunk verified, the whole not: never store it
        tmp = cache.tmp_path(self.rec.digest)
        tmp.write_bytes(data)
        cache.adopt(tmp, self.rec.digest)


def _close(session: RemoteSession) -> None:
    try:
        session.__exit__(None, None, None)
    except Exception:  # closing at interpreter exit: nothing left to report to
        pass


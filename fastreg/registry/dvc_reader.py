"""A DVC project read as a registry: the `Reader` every consumer uses (registry/reader.py), over
DVC's metadata and a DVC remote.

The tracked paths are the outs of the commit's `.dvc` files and `dvc.lock` files; each becomes a
Metafile whose digest is the out's md5 (an identity: it tells revisions apart and finds moved
data, it is never looked up in a cache). A path's files come from the out itself (a single file)
or from its directory manifest (`.dir`, fetched once and kept by md5 in the user cache). Reading
data brings each DVC object (parallel GETs), verifies it against its md5 and stores it in the
reader's cache in fastreg's format (dvc/objects.py); from there the rest of fastreg (check-out,
import metafiles, the fastreg:// filesystem) sees ordinary fastreg records and trees, and nothing
past this module knows the data came from DVC. An out whose path is in Git (`cache: false`) is
read as the Git file it is.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from fastreg import userdirs
from fastreg.dvc.formats import DvcFile, DvcRemote, Out, parse_config, parse_dvcfile, parse_lock, uncached_outs
from fastreg.dvc.objects import DvcObjects, Md5Map
from fastreg.errors import (
    DirectoryPathError,
    MetafileError,
    MissingPathError,
    NoRemoteError,
    ObjectNotFound,
    PathError,
    StorageError,
)
from fastreg.objects import metafile, tree
from fastreg.objects.tree import DirRecord, FileRecord
from fastreg.progress import Progress, phase
from fastreg.registry.mirror import Mirror, Resolved
from fastreg.registry.reader import Identity, Listed, Located, Materials, MetaPair, Reader, RegistryCommit, clean_path
from fastreg.repo.cache import Cache
from fastreg.transfer.fetch import FetchResult

if TYPE_CHECKING:
    from fastreg.repo.diff import FileChange

_HIDDEN_NAMES = (".gitignore", ".dvcignore")


class DvcReader(RegistryCommit):
    kind = "dvc"

    def __init__(self, git: Mirror, resolved: Resolved, configs: dict[str, bytes], cache: Cache | None,
                 jobs: int | None) -> None:
        """configs: each DVC project's `.dvc/config` by the project's folder ('' for the
        repository's root; others: subprojects of a monorepo, `dvc init --subdir`)."""
        super().__init__(git, resolved, cache, jobs)
        self._metafiles: dict[str, metafile.Metafile] | None = None
        # the deepest first: a path belongs to the innermost project above it
        self.projects: dict[str, tuple[str | None, dict[str, DvcRemote]]] = {
            root: parse_config(data, f"{self.url}:{_in(root, '.dvc/config')}")
            for root, data in sorted(configs.items(), key=lambda kv: -len(kv[0]))}
        self._outs: dict[str, Out] | None = None
        self._manifests: dict[str, list[tuple[str, DvcFile]]] = {}
        self._objects: dict[tuple[str, str], DvcObjects] = {}
        self._map: Md5Map | None = None
        self._brought = [0, 0]  # files, bytes downloaded since the last fetch() report
        self._dvc_lock = threading.RLock()
        self._identities: dict[str, dict[str, tuple[bytes, int | None, bool]]] = {}

    # -- metadata --------------------------------------------------------------------------------
    def hidden(self, path: str) -> bool:
        name = path.rpartition("/")[2]
        return "/.dvc/" in "/" + path or name.endswith(".dvc") or name in _HIDDEN_NAMES

    def project_of(self, path: str) -> str | None:
        """The folder of the DVC project a path belongs to (the innermost one above it), or None
        when it is in none (a monorepo's file outside every subproject: DVC ignores it)."""
        for root in self.projects:
            if not root or path.startswith(root + "/"):
                return root
        return None

    def outs(self) -> dict[str, Out]:
        """Every out of the commit whose bytes are in the DVC cache (not in Git), by path."""
        if self._outs is None:
            listing = self.ls_git()
            in_git: set[str] = set()  # every Git file and every folder above one
            for p, _, _ in listing:
                while p and p not in in_git:
                    in_git.add(p)
                    p = p.rpartition("/")[0]
            names = [p for p, typ, _ in listing if typ == "blob" and "/.dvc/" not in "/" + p
                     and (p.endswith(".dvc") or p.rpartition("/")[2] == "dvc.lock")
                     and self.project_of(p) is not None]
            # A lock does not say which outs are cached; its dvc.yaml does (`cache: false`)
            yamls = [posixpath.join(posixpath.dirname(n), "dvc.yaml") for n in names if n.endswith("dvc.lock")]
            uncached: set[str] = set()
            for name, data in zip(yamls, self.git.read_many(self.commit, yamls), strict=True):
                if data is not None:
                    uncached |= uncached_outs(data, name, f"{self.url}:{name}")
            outs: dict[str, Out] = {}
            for name, data in zip(names, self.git.read_many(self.commit, names), strict=True):
                where = f"{self.url}:{name}"
                found = parse_lock(data or b"", name, where) if name.endswith("dvc.lock") else \
                    parse_dvcfile(data or b"", name, where)
                for out in found:
                    if not out.cache or out.path in in_git or out.path in uncached:
                        continue  # its bytes are in Git (or nowhere): read as a Git file
                    if out.path in outs:
                        raise MetafileError(f"{where}: {out.path} is an out of {outs[out.path].origin} too")
                    outs[out.path] = out
            self._outs = outs
        return self._outs

    def _synth(self, out: Out) -> metafile.Metafile:
        files = out.files if out.files is not None else (1 if out.kind == "file" else 0)
        return metafile.Metafile(PurePosixPath(out.path).name, out.kind, bytes.fromhex(out.md5), out.size or 0,
                                 files, out.executable)

    def metafiles(self) -> dict[str, metafile.Metafile]:
        if self._metafiles is None:
            self._metafiles = {p: self._synth(o) for p, o in self.outs().items()}
        return self._metafiles

    def meta_at(self, target: str) -> metafile.Metafile | None:
        return self.metafiles().get(target)

    def locate(self, path: str) -> Located:
        path = clean_path(path)
        metas = self.metafiles()
        if path in metas:
            return Located(path, metas[path], None)
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            owner = "/".join(parts[:i])
            meta = metas.get(owner)
            if meta is not None:
                if meta.kind != "dir":
                    break
                return Located(owner, meta, "/".join(parts[i:]))
        return self.locate_in_git(path)

    def _out(self, loc: Located) -> Out:
        out = self.outs().get(loc.target)
        if out is None:
            raise PathError(f"{loc.target}: not a DVC out of {self.url}")
        return out

    # -- the DVC remote ----------------------------------------------------------------------------
    def objects(self, out: Out) -> DvcObjects:
        """The remote an out's objects are read from: its own `remote:`, else the default."""
        root = self.project_of(out.path) or ""
        default, remotes = self.projects[root]
        project = f"{self.url}/{root}" if root else self.url
        name = out.remote or default
        if name is None:
            raise NoRemoteError(f"the DVC project {project} has no default remote at {self.commit[:10]}, so the data "
                                f"of {out.path} cannot be read; its maintainers must commit one "
                                "(`dvc remote add -d NAME URL`)")
        remote: DvcRemote | None = remotes.get(name)
        if remote is None:
            raise NoRemoteError(f"{out.path}: its DVC remote {name!r} is not in {self.url}:{_in(root, '.dvc/config')} "
                                f"(remotes: {', '.join(sorted(remotes)) or 'none'})")
        with self._dvc_lock:
            if (root, name) not in self._objects:
                here = Path(self.url)
                base = here / root / ".dvc" if "://" not in self.url and here.is_dir() else None
                self._objects[root, name] = DvcObjects(remote, base, self.jobs, out.path)
            return self._objects[root, name]

    @property
    def md5map(self) -> Md5Map:
        if self._map is None:
            self._map = Md5Map(self.cache)
        return self._map

    def files_of(self, out: Out) -> list[tuple[str, DvcFile]]:
        """(path inside the out, file) of every file of an out ('' for a single-file out), in
        path order; a directory's manifest read once per reader (and cached by md5)."""
        if out.kind == "file":
            return [("", out.file)]
        if out.inline is not None:
            return sorted(out.inline)
        with self._dvc_lock:
            if out.path not in self._manifests:
                self._manifests[out.path] = self.objects(out).manifest(
                    out.md5, out.legacy, f"{self.url}:{out.path}", userdirs.dvc_manifests())
            return self._manifests[out.path]

    def _selected(self, loc: Located) -> tuple[Literal["file", "dir"], list[tuple[str, DvcFile]]]:
        """What a located path is and its files (relative to it; '' for a file)."""
        out = self._out(loc)
        files = self.files_of(out)
        if loc.subpath is None:
            return out.kind, files
        sub = loc.subpath
        for rel, f in files:
            if rel == sub:
                return "file", [("", f)]
        prefix = sub + "/"
        inside = [(rel[len(prefix):], f) for rel, f in files if rel.startswith(prefix)]
        if not inside:
            raise MissingPathError(f"{loc.path}: not in the tracked directory {loc.target} of {self.url}")
        return "dir", inside

    # -- listings (metadata only) ------------------------------------------------------------------
    def _size(self, f: DvcFile) -> int | None:
        if f.size is not None:
            return f.size
        known = self.md5map.get(f)
        return known.size if known is not None else None

    def provenance(self, target: str) -> metafile.ImportSource | None:
        out = self.outs().get(target)
        if out is None or out.source is None:
            return None
        return metafile.ImportSource(out.source.url, out.source.path, out.source.rev, out.source.rev_lock)

    def known(self, loc: Located) -> Listed:
        out = self._out(loc)
        return Listed(out.kind, out.size, out.files if out.kind == "dir" else None)

    def stat(self, loc: Located) -> Listed:
        if (src := self.imported(loc)) is not None:
            return src[0].stat(src[1])
        if loc.subpath is None:
            out = self._out(loc)
            if out.size is not None and (out.kind == "file" or out.files is not None):
                return Listed(out.kind, out.size, out.files)  # as its .dvc file says: no manifest read
        kind, files = self._selected(loc)
        if loc.subpath is None:
            out = self._out(loc)
            size = out.size if out.size is not None else _total(self._size(f) for _, f in files)
            return Listed(kind, size, len(files) if kind == "dir" else None)
        if kind == "file":
            return Listed("file", self._size(files[0][1]))
        return Listed("dir", _total(self._size(f) for _, f in files), len(files))

    def listdir(self, loc: Located) -> list[tuple[str, Listed]]:
        if (src := self.imported(loc)) is not None:
            return src[0].listdir(src[1])
        kind, files = self._selected(loc)
        if kind != "dir":
            raise PathError(f"{loc.path}: a file, not a folder")
        folders: dict[str, list[DvcFile]] = {}
        out: list[tuple[str, Listed]] = []
        for rel, f in files:
            head, sep, _ = rel.partition("/")
            if sep:
                folders.setdefault(head, []).append(f)
            else:
                out.append((rel, Listed("file", self._size(f))))
        out += [(name, Listed("dir", _total(self._size(f) for f in fs), len(fs))) for name, fs in folders.items()]
        return sorted(out)

    def listall(self, loc: Located) -> list[tuple[str, Listed]]:
        if (src := self.imported(loc)) is not None:
            return src[0].listall(src[1])
        kind, files = self._selected(loc)
        if kind != "dir":
            raise PathError(f"{loc.path}: a file, not a folder")
        return [(rel, Listed("file", self._size(f))) for rel, f in files]

    def identities(self, target: str) -> dict[str, tuple[bytes, int | None, bool]]:
        """{path inside the out ('' for a file out): (md5, size if known, executable)} of a
        tracked path, from its out and manifest (no data): what diff compares."""
        out = self.outs()[target]
        if out.kind == "file":
            return {"": (bytes.fromhex(out.md5), out.size, out.executable)}
        if out.source is not None:  # an import stage's manifest is its source's (read once)
            with self._dvc_lock:
                known = self._identities.get(target)
            if known is None:
                known = self.imported_identities(target) or {}
                with self._dvc_lock:
                    self._identities[target] = known
            return known
        # sizes as known now: a manifest records none, the data read so far tells them
        return {rel: (bytes.fromhex(f.md5), self._size(f), f.executable) for rel, f in self.files_of(out)}

    def identity(self, loc: Located) -> Identity:
        if loc.meta is None:
            return Identity(len(self.git_bytes(loc.path)), None)
        if (src := self.imported(loc)) is not None:
            return src[0].identity(src[1])
        md5, size, _ = self.identities(loc.target)[loc.subpath or ""]
        return Identity(size, "md5:" + md5.hex())

    def diff(self, newer: Reader, pairs: list[MetaPair], within: list[str] | None) -> list[FileChange]:
        """The file changes to a newer revision of the DVC project, from its outs and the
        manifests of the directories that differ: files are told apart by md5 (a rename is the
        same md5 at a new path); a size the manifests do not record is None."""
        from fastreg.repo.diff import classify

        assert isinstance(newer, DvcReader)  # open_reader gives one kind per registry layout
        changes: list[tree.Change] = []
        sizes: tuple[dict[str, int | None], dict[str, int | None]] = ({}, {})
        for p, ma, mb in pairs:
            if ma is not None and mb is not None and (ma.digest, ma.kind, ma.executable) == \
                    (mb.digest, mb.kind, mb.executable):
                continue
            sides = []
            for reg, meta, known in ((self, ma, sizes[0]), (newer, mb, sizes[1])):
                files: dict[str, FileRecord] = {}
                if meta is not None:
                    for rel, (digest, size, executable) in reg.identities(p).items():
                        full = f"{p}/{rel}" if rel else p
                        files[full] = FileRecord(size or 0, digest, b"", executable)
                        known[full] = size
                sides.append(files)
            fa, fb = sides
            for full in sorted(fa.keys() | fb.keys()):
                ra, rb = fa.get(full), fb.get(full)
                if ra is None or rb is None or (ra.digest, ra.executable) != (rb.digest, rb.executable):
                    changes.append((full, ra, rb))
        return [dataclasses.replace(c, size=sizes[0 if c.kind == "deleted" else 1].get(c.path),
                                    old_size=sizes[0].get(c.path) if c.kind == "modified" else None)
                for c in classify(changes, within)]

    # -- data ------------------------------------------------------------------------------------
    def _bring(self, out: Out, files: list[tuple[str, DvcFile]], progress: Progress | None) -> list[FileRecord]:
        """The fastreg records of these files of out, each in the cache: what the md5 map and the
        cache hold already, the rest downloaded, verified and converted (recorded as it lands)."""
        have: dict[tuple[str, bool], FileRecord] = {}
        missing: list[tuple[str, DvcFile]] = []
        for rel, f in files:
            if f.key in have:
                continue
            rec = self.md5map.get(f)
            if rec is not None and self.cache.has_file(rec.digest):
                have[f.key] = rec
            else:
                missing.append((f"{out.path}/{rel}" if rel else out.path, f))
        if missing:
            self.cache.ensure()
            phase(progress, "download", _total(f.size for _, f in missing))
            landed: list[tuple[DvcFile, FileRecord]] = []

            def on_file(f: DvcFile, rec: FileRecord) -> None:
                landed.append((f, rec))

            try:
                nbytes = self.objects(out).bring(missing, self.cache, progress, on_file)
            except StorageError as exc:
                if isinstance(exc, ObjectNotFound) or exc.message.startswith(f"{out.path}:"):
                    raise
                raise StorageError(f"{out.path}: its data could not be read from the DVC remote of {self.url} "
                                   f"({exc.message}); the remote may be down, or its endpoint or credentials "
                                   "need setting on this machine", exc.retryable) from None
            finally:
                self.md5map.add(landed)
            for f, rec in landed:
                have[f.key] = rec
            self._brought[0] += len(landed)
            self._brought[1] += nbytes
        return [FileRecord(r.size, r.digest, r.chunks, f.executable)
                for r, f in ((have[f.key], f) for _, f in files)]

    def materials(self, loc: Located, progress: Progress | None = None) -> Materials:
        if (src := self.imported(loc)) is not None:  # the source brings its data into this cache now
            reader, inner = src
            got = reader.materials(inner, progress)
            assert inner.meta is not None
            res = reader.fetch(got.files, inner.meta.digest, progress)
            if res.damaged:
                from fastreg.transfer.fetch import damage_error

                raise damage_error(res.damaged, lambda d: d.hex(), res.files)
            self._brought[0] += res.files
            self._brought[1] += res.bytes
            return got
        """The files of a located path as fastreg records, their bytes brought into the cache
        (a DVC manifest has no digests but md5s: the data is what tells its fastreg records);
        a folder's tree nodes are put into the cache as `add` would build them."""
        out = self._out(loc)
        kind, files = self._selected(loc)
        records = self._bring(out, files, progress)
        if kind == "file":
            return Materials.single(records[0])
        pairs = [(rel, rec) for (rel, _), rec in zip(files, records, strict=True)]
        try:
            top = tree.from_files(self.cache, pairs)
        except ValueError as exc:
            raise MetafileError(f"{self.url}:{out.origin}: {out.path}: {exc}") from None
        return Materials(pairs, "dir", top.digest, top.size, top.files)

    def fetch(self, files: list[tuple[str, FileRecord]], root: bytes, progress: Progress | None = None,
              on_arrival: Callable[[], None] | None = None) -> FetchResult:
        """Nothing left to download: materials() brought every file (what it brought is
        reported here, once)."""
        brought, self._brought = self._brought, [0, 0]
        return FetchResult(brought[0], brought[1], brought[0], max(0, len(files) - brought[0]))

    def record(self, loc: Located) -> tree.Record:
        got = self.materials(loc)
        if got.kind == "file":
            return got.files[0][1]
        return DirRecord(got.size, got.digest, got.count)

    def open(self, loc: Located) -> io.RawIOBase:
        if loc.meta is None:
            return self.open_git(loc)
        got = self.materials(loc)
        if got.kind != "file":
            raise DirectoryPathError(f"{loc.path}: a directory; open its files, or get it whole")
        return io.FileIO(self.cache.file_path(got.digest), "rb")

    def read_whole(self, locs: list[Located]) -> dict[str, bytes]:
        self.prefetch(locs)
        out = {}
        for loc in locs:
            with self.open(loc) as f:
                out[loc.path] = f.read()
        return out

    def prefetch(self, locs: list[Located]) -> None:
        by_out: dict[str, list[tuple[str, DvcFile]]] = {}
        for loc in locs:
            if loc.meta is None:
                continue
            if self.imported(loc) is not None:
                self.materials(loc)  # the source's data, brought into this cache
                continue
            kind, files = self._selected(loc)
            if kind == "file":
                by_out.setdefault(loc.target, []).append((loc.subpath or "", files[0][1]))
        for target, files in by_out.items():
            self._bring(self.outs()[target], files, None)

    def import_source(self, sources: list[metafile.ImportSource]) -> None:
        """Every import's data into the cache here (read and converted from the DVC remote): a
        DVC project has no fastreg remote to hand out."""
        for source in sources:
            loc = self.locate(source.path)
            if loc.meta is None:
                self.git_file_into_cache(loc)
            else:
                self.materials(loc)
        return None


def _in(root: str, path: str) -> str:
    return f"{root}/{path}" if root else path


def _total(sizes: Iterable[int | None]) -> int | None:
    total = 0
    for s in sizes:
        if s is None:
            return None
        total += s
    return total

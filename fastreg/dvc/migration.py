"""`fastreg migrate`: a DVC project's `.dvc` outs become fastreg metafiles, in place.

Each out's files come from the first place that has them with the recorded md5: the workspace
(when the file there still matches), the DVC cache (`.dvc/cache`, both layouts, or its `cache.dir`),
and with from_remote the DVC remote; every file is verified against its md5 (DVC 2's legacy rule
where it applies) before it is stored in the fastreg cache. An out whose manifest or files are
nowhere is reported and skipped, never recorded wrong. Per out, in this order: objects into the
cache (each atomic), the metafile (atomic), its `.gitignore` line (DVC wrote the same `/NAME`,
which now belongs to the metafile), then the `.dvc` file out of the index and the work tree once
all of its outs are migrated. A run killed anywhere leaves a state the next run finishes: an out
whose `.dvc` file is still there is converted again (its objects are found in the cache), giving
the same metafile; a second run of a finished migration finds nothing to do.

Pipeline outs (`dvc.lock`) stay DVC's: `dvc repro` owns them.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import xxhash

from fastreg import userdirs
from fastreg.chunking import default_chunker
from fastreg.dvc.formats import (
    DvcFile,
    DvcRemote,
    Out,
    config_remotes,
    parse_config,
    parse_dvcfile,
    parse_lock,
    parse_manifest,
)
from fastreg.dvc.md5 import Md5Check
from fastreg.dvc.objects import OPTIONS as DVC_OPTIONS
from fastreg.dvc.objects import READABLE, DvcObjects
from fastreg.errors import FastregError, MetafileError, PathError, UsageError
from fastreg.objects import metafile, tree
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress, phase
from fastreg.repo.cache import Cache
from fastreg.repo.project import Project

if TYPE_CHECKING:
    from fastreg.registry.reader import Reader

WRITABLE = ("local", "s3", "gs", "azure", "ssh")  # the DVC remote kinds fastreg pushes to

#: Files up to this size are verified and stored from memory (one read); bigger ones stream
#: through a cache temp file, so memory stays bounded by threads x this.
INLINE = 16 << 20
_STREAM = 1 << 20


@dataclass
class OutPlan:
    out: Out
    dvcfile: str  # the .dvc file (from the project's root)
    skip: str | None = None  # why it is not migrated
    failed: bool = False  # skipped because its bytes (or manifest) are nowhere, not by design
    files: int = 0
    size: int = 0


@dataclass
class MigrateResult:
    outs: list[OutPlan] = field(default_factory=list)
    remotes: list[tuple[str, str]] = field(default_factory=list)  # fastreg remotes written: (name, url)
    files: int = 0
    bytes: int = 0
    verified: int = 0  # md5s checked
    saved: int = 0  # bytes not stored again: the same content was in the cache already
    removed: list[str] = field(default_factory=list)  # .dvc files taken out of the index
    notes: list[str] = field(default_factory=list)  # what the user should know (warning lines)

    @property
    def migrated(self) -> list[OutPlan]:
        return [p for p in self.outs if p.skip is None]

    @property
    def skipped(self) -> list[OutPlan]:
        return [p for p in self.outs if p.skip is not None]


def find_root(start: Path) -> Path:
    """The DVC project around start: the nearest folder with a `.dvc/` folder."""
    here = start.absolute()
    for d in (here, *here.parents):
        if (d / ".dvc").is_dir():
            return d
    raise UsageError(f"{here} is not inside a DVC project (no .dvc/ folder here or above); run "
                     "`fastreg migrate` in the work tree of the DVC project to convert")


def _git(root: Path, *args: str) -> str:
    """git through git_cli (no prompts, one error line when git is missing or fails)."""
    from fastreg import git_cli

    return git_cli.run(list(args), cwd=root, what=f"git {' '.join(args[:2])} in {root}").stdout.decode(
        errors="surrogateescape")


def _listed(root: Path, pattern: str) -> list[str]:
    out = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", pattern)
    return sorted({p for p in out.split("\0") if p and not p.startswith(".dvc/") and (root / p).is_file()})


def _config(root: Path) -> tuple[bytes, configparser.ConfigParser]:
    """`.dvc/config` (its bytes, and with `config.local` over it, parsed)."""
    data = b""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for name in ("config", "config.local"):
        try:
            text = (root / ".dvc" / name).read_bytes()
        except FileNotFoundError:
            continue
        if name == "config":
            data = text
        try:
            parser.read_string(text.decode())
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise MetafileError(f".dvc/{name} does not parse ({str(exc).splitlines()[0]})") from None
    return data, parser


def dvc_cache_dirs(root: Path, parser: configparser.ConfigParser) -> list[Path]:
    """Where the DVC cache is: `cache.dir` (relative to .dvc/) or .dvc/cache."""
    configured = parser.get("cache", "dir", fallback=None)
    base = root / ".dvc"
    return [(base / os.path.expanduser(configured)).resolve() if configured else base / "cache"]


def _cached(dirs: list[Path], md5: str, legacy: bool, suffix: str = "") -> list[Path]:
    layouts = [f"files/md5/{md5[:2]}/{md5[2:]}{suffix}", f"{md5[:2]}/{md5[2:]}{suffix}"]
    if legacy:
        layouts.reverse()
    return [d / key for d in dirs for key in layouts]


def _md5_matches(path: Path, f: DvcFile) -> bool:
    """Whether the file at path has f's md5 (under DVC 2's text rule for a legacy entry)."""
    check = Md5Check(f.legacy)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                check.update(block)
    except OSError:
        return False
    return check.matches(f.md5)


def remote_names(dvc_remotes: dict[str, DvcRemote]) -> dict[str, str]:
    """The fastreg remote name of each DVC remote: the same name when fastreg takes it, else its
    characters fastreg does not take as '-' (a DVC remote `docs/dvc` becomes `docs-dvc`), one
    name per remote. The dry run and the real run name them alike."""
    from fastreg.repo.remotes import NAME

    out: dict[str, str] = {}
    for dvc_name in sorted(dvc_remotes):
        name = dvc_name if NAME.fullmatch(dvc_name) else re.sub(r"[^A-Za-z0-9_.-]", "-", dvc_name).lstrip("-_.")
        name = name or "remote"
        base, k = name, 2
        while name in out.values():
            name, k = f"{base}-{k}", k + 1
        out[dvc_name] = name
    return out


def fastreg_url(remote: DvcRemote, prefix: str | None, root: Path) -> str:
    """Where a DVC remote's data goes in fastreg's layout: the prefix given, else beside the DVC
    data (`URL-fastreg`; a bucket's root: `s3://BUCKET/fastreg`), never inside DVC's own layout.
    A relative local path (relative to .dvc/ for DVC) is made relative to the project's root."""
    if prefix:
        return prefix
    url = remote.url.rstrip("/")
    if remote.kind == "local":
        path = url.removeprefix("file://")
        if not os.path.isabs(os.path.expanduser(path)):
            path = os.path.relpath(os.path.normpath(root / ".dvc" / path), root)
        return path + "-fastreg"
    rest = url.partition("://")[2]
    return f"{url}/fastreg" if "/" not in rest else f"{url}-fastreg"


class _Store:
    """Verify and store files into the fastreg cache, counting what was verified and deduplicated."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.chunker = default_chunker()
        self.lock = threading.Lock()
        self.seen: set[bytes] = set()
        self.verified = 0
        self.saved = 0

    def _note(self, digest: bytes, size: int, present: bool) -> None:
        with self.lock:
            self.verified += 1
            if present or digest in self.seen:
                self.saved += size
            self.seen.add(digest)

    def from_path(self, path: Path, f: DvcFile) -> FileRecord | None:
        """The file at path into the cache if its bytes have f's md5; None if it is not there or
        does not match."""
        try:
            size = os.stat(path).st_size
            if size <= INLINE:
                with open(path, "rb") as fh:
                    data = fh.read()
                return self.from_bytes(data, f)
            return self._stream(path, f)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    def tally(self, checked: Iterable[tuple[bytes, int]]) -> None:
        """Count files check_path verified (digest, size): the same bytes twice are stored once."""
        with self.lock:
            for digest, size in checked:
                self.verified += 1
                if digest in self.seen:
                    self.saved += size
                self.seen.add(digest)

    def check_path(self, path: str, f: DvcFile) -> tuple[bytes, int] | None:
        """An identity (XXH3-128, for counting the same bytes once; not what add records) and the
        size of the file at path if its bytes have f's md5 (read only, nothing stored); None if it
        is not there or does not match. The hot loop of a migration: plain
        os calls, one read for a file up to INLINE."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size <= INLINE:
                data = os.read(fd, size + 1)
                if f.legacy:
                    check = Md5Check(True)
                    check.update(data)
                    ok = check.matches(f.md5)
                else:
                    ok = hashlib.md5(data).hexdigest() == f.md5
                digest = xxhash.xxh3_128_digest(data)
                size = len(data)
            else:
                check = Md5Check(f.legacy)
                whole = xxhash.xxh3_128()
                size = 0
                while block := os.read(fd, _STREAM):
                    check.update(block)
                    whole.update(block)
                    size += len(block)
                ok, digest = check.matches(f.md5), whole.digest()
        except OSError:
            return None
        finally:
            os.close(fd)
        return (digest, size) if ok else None

    def from_bytes(self, data: bytes, f: DvcFile) -> FileRecord | None:
        check = Md5Check(f.legacy)
        check.update(data)
        if not check.matches(f.md5):
            return None
        digest, chunks = self.chunker.digest_buffer(data)
        present = self.cache.has_file(digest)
        if not present:
            self.cache.put_bytes(data, digest)
        self._note(digest, len(data), present)
        return FileRecord(len(data), digest, chunks, f.executable)

    def _stream(self, path: Path, f: DvcFile) -> FileRecord | None:
        check = Md5Check(f.legacy)
        tmp = self.cache.tmp_path()
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                while block := src.read(_STREAM):
                    check.update(block)
                    dst.write(block)
            if not check.matches(f.md5):
                return None
            os.chmod(tmp, 0o444)
            [hashed] = self.chunker.hash_files([str(tmp)])  # of the copy: what is stored is what is hashed
            present = self.cache.has_file(hashed.digest)
            self.cache.adopt(tmp, hashed.digest)
            self._note(hashed.digest, hashed.size, present)
            return FileRecord(hashed.size, hashed.digest, hashed.chunks, f.executable)
        finally:
            if tmp.exists():
                tmp.unlink()


class Migration:
    def __init__(self, root: Path, from_remote: bool, prefix: str | None, jobs: int | None) -> None:
        self.root = root
        self.from_remote = from_remote
        self.prefix = prefix
        self.jobs = jobs
        self.config_bytes, self.parser = _config(root)
        parse_config(self.config_bytes, ".dvc/config")  # the committed file parses by itself
        self.default, self.dvc_remotes = config_remotes(self.parser)  # with config.local's secrets
        self.cache_dirs = dvc_cache_dirs(root, self.parser)
        self._objects: dict[str, DvcObjects] = {}
        self._source_readers: dict[tuple[str, str, int], Reader] = {}

    def close(self) -> None:
        for reader in self._source_readers.values():
            reader.close()

    # -- import stages: their data is their source registry's ----------------------------------
    def import_source(self, out: Out) -> metafile.ImportSource | None:
        """What the fastreg import made from an import stage records: its source's url (a relative
        local one made absolute: it was relative to this project), path, rev and rev_lock."""
        src = out.source
        if src is None:
            return None
        url = src.url
        if "://" not in url and ":" not in url.split("/")[0] and not PurePosixPath(url).is_absolute():
            url = str((self.root / url).resolve())
        return metafile.ImportSource(url, src.path, src.rev, src.rev_lock)

    def source_reader(self, out: Out, cache: Cache | None) -> Reader:
        source = self.import_source(out)
        assert source is not None
        key = (source.url, source.rev_lock, id(cache))
        if key not in self._source_readers:
            from fastreg.registry.kinds import open_reader

            self._source_readers[key] = open_reader(source.url, source.rev_lock, cache, self.jobs)
        return self._source_readers[key]

    # -- the plan ----------------------------------------------------------------------------
    def plan(self, targets: list[str]) -> list[OutPlan]:
        dvcfiles = _listed(self.root, "*.dvc")
        if targets:
            chosen = []
            for t in targets:
                rel = os.path.relpath(os.path.abspath(t), self.root).replace(os.sep, "/")
                rel = rel if rel.endswith(".dvc") else rel + ".dvc"
                if rel not in dvcfiles:
                    raise PathError(f"{t}: not a .dvc file of the DVC project {self.root}")
                chosen.append(rel)
            dvcfiles = chosen
        plans: list[OutPlan] = []
        for name in dvcfiles:
            for out in parse_dvcfile((self.root / name).read_bytes(), name):
                plan = OutPlan(out, name)
                if not out.cache:
                    plan.skip = "cache: false (its bytes are in Git already)"
                plans.append(plan)
        if not targets:
            for name in _listed(self.root, "*dvc.lock"):
                if PurePosixPath(name).name != "dvc.lock":
                    continue
                for out in parse_lock((self.root / name).read_bytes(), name):
                    plans.append(OutPlan(out, name, f"a pipeline output ({out.origin}): `dvc repro` owns it"))
        return plans

    def writable(self, name: str, remote: DvcRemote) -> bool:
        """Whether a DVC remote becomes a fastreg remote to push to: one fastreg can write (local,
        S3), or the default with --prefix (the data then goes to the prefix). A read-only one
        (HTTP) is never made a remote to push to."""
        return remote.kind in WRITABLE or (name == self.default and bool(self.prefix))

    def notes(self) -> list[str]:
        remote = self.dvc_remotes.get(self.default) if self.default else None
        if remote is not None and remote.kind in READABLE and remote.kind not in WRITABLE and not self.prefix:
            return [f"the DVC default remote {self.default!r} is read-only for fastreg ({remote.kind}: "
                    f"{remote.url}), so it is not made the remote to push to; give `--prefix URL` for where "
                    "fastreg's data should go (the migration reads from the DVC remote all the same)"]
        return []

    def somewhere(self, out: Out, rel: str, f: DvcFile) -> bool:
        """Whether a file of out has a candidate on this machine (its workspace file or a DVC
        cache object): what the real run reads, looked for without reading it."""
        if any(p.is_file() for p in _cached(self.cache_dirs, f.md5, f.legacy)):
            return True  # a DVC cache object, named by its md5 (the real run verifies it as it reads)
        here = self.root / out.path / rel if rel else self.root / out.path
        if out.kind == "file":  # one file: its md5 is checked as the real run does (an edit shows here)
            return _md5_matches(here, f)
        return here.is_file()

    def objects(self, out: Out) -> DvcObjects | None:
        name = out.remote or self.default
        remote = self.dvc_remotes.get(name) if name else None
        if name is None or remote is None:
            return None
        if name not in self._objects:
            self._objects[name] = DvcObjects(remote, self.root / ".dvc", self.jobs, out.path)
        return self._objects[name]

    def files_of(self, out: Out) -> list[tuple[str, DvcFile]] | str:
        """The out's files, or why they cannot be known."""
        if out.kind == "file":
            return [("", out.file)]
        if out.inline is not None:
            return sorted(out.inline)
        for path in _cached(self.cache_dirs, out.md5, out.legacy, ".dir"):
            try:
                return parse_manifest(path.read_bytes(), out.md5, out.legacy, f"{out.origin}: {out.path}")
            except (FileNotFoundError, MetafileError):
                continue
        if self.from_remote and out.source is not None:
            from fastreg.registry.dvc_reader import DvcReader

            reader = self.source_reader(out, None)
            loc = reader.locate(out.source.path)
            if isinstance(reader, DvcReader) and loc.meta is not None and loc.subpath is None:
                return reader.files_of(reader.outs()[loc.target])
            return (f"its manifest {out.md5}.dir is not in the DVC cache, and its source {out.source.url} "
                    f"has no DVC out {out.source.path} at {out.source.rev_lock[:10]}")
        if self.from_remote:
            objects = self.objects(out)
            if objects is None:
                return f"its manifest {out.md5}.dir is not in the DVC cache and it has no DVC remote"

            where = f"{out.origin}: {out.path}"
            return objects.manifest(out.md5, out.legacy, where, userdirs.dvc_manifests())
        return f"its manifest {out.md5}.dir is not in the DVC cache (--from-remote reads it from {_remote_of(out)})"

    # -- converting ----------------------------------------------------------------------------
    def convert(self, plan: OutPlan, store: _Store, progress: Progress | None,
                project: Project) -> tuple[str, FileRecord] | None:
        """The out's files into the cache; (kind, record) of the whole, or None (plan.skip says why).
        Each file is taken from the first place that has it with its md5: the workspace (a whole
        directory through `add`'s own pipeline), the DVC cache, the DVC remote (--from-remote)."""
        out = plan.out
        files = self.files_of(out)
        if isinstance(files, str):
            plan.skip, plan.failed = files, True
            return None
        base = self.root / out.path
        with ThreadPoolExecutor(self.jobs or max(2, os.cpu_count() or 2)) as pool:
            records, built = self._from_workspace(out, files, base, store, project, pool, progress)
            if any(r is None for r in records):
                records = self._from_caches(out, files, records, base, built is None, store, pool, progress)
        records = self._from_remote(out, files, records, store, progress)
        missing = [(rel, f) for (rel, f), rec in zip(files, records, strict=True) if rec is None]
        if missing:
            rel, f = missing[0]
            where = "workspace, DVC cache" + (", DVC remote" if self.from_remote else "")
            plan.skip = (f"{len(missing)} of its files are nowhere ({where}) with their md5, e.g. "
                         f"{out.path}/{rel}".rstrip("/") + f" (md5 {f.md5})"
                         + ("" if self.from_remote else f"; --from-remote reads them from {_remote_of(out)}"))
            plan.failed = True
            return None
        pairs = [(rel, rec) for (rel, _), rec in zip(files, records, strict=True) if rec is not None]
        plan.files, plan.size = len(pairs), sum(r.size for _, r in pairs)
        if out.kind == "file":
            return "file", pairs[0][1]
        if built is not None:
            return "dir", FileRecord(built.size, built.digest, b"", False)
        try:
            top = tree.from_files(store.cache, pairs)
        except ValueError as exc:
            raise MetafileError(f"{out.origin}: {out.path}: {exc}") from None
        return "dir", FileRecord(top.size, top.digest, b"", False)

    def _from_workspace(self, out: Out, files: list[tuple[str, DvcFile]], base: Path, store: _Store,
                        project: Project, pool: ThreadPoolExecutor, progress: Progress | None
                        ) -> tuple[list[FileRecord | None], tree.DirRecord | None]:
        """A directory whose workspace files match their md5s (checked after, reading what is
        then in the page cache) is stored by `add`'s own pipeline (native copy-and-hash, the stat
        cache written: the first `status` afterwards reads nothing); only what `add` recorded with
        the digests of the verified bytes is taken. Returns the records found (None: not here)
        and add's tree when it is the recorded version exactly."""
        records: list[FileRecord | None] = [None] * len(files)
        if not (out.kind == "dir" and base.is_dir() and not base.is_symlink()):
            return records, None
        # add's pipeline stores the tree (native copies, all cores) and gives the md5 of each file
        # it copied from the same read; a file it did not copy, or whose md5 is not the raw
        # bytes' (DVC 2's dos2unix md5 of a CRLF text), is read again and checked here.
        prefix = str(base) + os.sep

        def check(batch: list[tuple[str, DvcFile]]) -> list[tuple[bytes, int] | None]:
            return [store.check_path(prefix + rel, f) for rel, f in batch]

        from fastreg.repo import add as add_mod

        md5s: dict[str, bytes] = {}
        made = add_mod.build(project, project.target(str(base)), self.jobs, progress, md5s)
        assert isinstance(made, tree.DirRecord)
        walked = dict(tree.walk(store.cache, made.digest))
        sized: list[tuple[bytes, int] | None] = [None] * len(files)
        again: list[int] = []
        for i, (rel, f) in enumerate(files):
            got, w = md5s.get(rel), walked.get(rel)
            if got is not None and w is not None and got.hex() == f.md5:
                sized[i] = (w.digest, w.size)  # md5 and digest of the very bytes add stored
            else:
                again.append(i)
        todo = [files[i] for i in again]
        checking = [pool.submit(check, todo[i : i + 256]) for i in range(0, len(todo), 256)]
        for i, one in zip(again, (d for c in checking for d in c.result()), strict=True):
            sized[i] = one
        checked = [d[0] if d is not None else None for d in sized]
        store.tally(d for d in sized if d is not None)
        if not any(d is not None for d in checked):
            return records, None
        for i, ((rel, f), digest) in enumerate(zip(files, checked, strict=True)):
            w = walked.get(rel)
            if digest is not None and w is not None and w.digest == digest:
                records[i] = w if w.executable == f.executable else FileRecord(w.size, w.digest, w.chunks, f.executable)
        if len(walked) != len(files) or any(r is None or r is not walked.get(rel)
                                            for (rel, _), r in zip(files, records, strict=True)):
            return records, None  # not the recorded version as it is: the tree is built from the records
        return records, made

    def _from_caches(self, out: Out, files: list[tuple[str, DvcFile]], records: list[FileRecord | None],
                     base: Path, single_from_workspace: bool, store: _Store, pool: ThreadPoolExecutor,
                     progress: Progress | None) -> list[FileRecord | None]:
        """The files not found yet, from the workspace (a single-file out) or the DVC caches."""

        def one(item: tuple[int, tuple[str, DvcFile]]) -> FileRecord | None:
            i, (rel, f) = item
            if records[i] is not None:
                return records[i]
            paths = ([base / rel if rel else base] if single_from_workspace and out.kind == "file" else []) + \
                _cached(self.cache_dirs, f.md5, f.legacy)
            for path in paths:
                rec = store.from_path(path, f)
                if rec is not None:
                    if progress is not None:
                        progress(1, rec.size)
                    return rec
            return None

        return list(pool.map(one, enumerate(files)))

    def _from_remote(self, out: Out, files: list[tuple[str, DvcFile]], records: list[FileRecord | None],
                     store: _Store, progress: Progress | None) -> list[FileRecord | None]:
        """The files still missing, from the DVC remote (with --from-remote)."""
        missing = [(rel, f) for (rel, f), rec in zip(files, records, strict=True) if rec is None]
        if not missing or not self.from_remote:
            return records
        if out.source is not None:
            return self._from_source(out, files, records, store, progress)
        objects = self.objects(out)
        if objects is None:
            return records
        got: dict[tuple[str, bool], FileRecord] = {}
        objects.bring([(f"{out.path}/{rel}" if rel else out.path, f) for rel, f in missing], store.cache,
                      progress, lambda f, rec: got.__setitem__(f.key, rec))
        store.verified += len(got)
        return [rec if rec is not None else _with_exec(got.get(f.key), f)
                for (_, f), rec in zip(files, records, strict=True)]


    def _from_source(self, out: Out, files: list[tuple[str, DvcFile]], records: list[FileRecord | None],
                     store: _Store, progress: Progress | None) -> list[FileRecord | None]:
        """An import stage's missing files, from its source registry at rev_lock (DVC never
        pushes an import's data to the importing project's remote): verified there, brought into
        this project's cache."""
        assert out.source is not None
        reader = self.source_reader(out, store.cache)
        loc = reader.locate(out.source.path)
        if loc.meta is None:  # a Git file of the source
            data = reader.git_bytes(loc.target)
            got_one = store.from_bytes(data, files[0][1])
            return [rec if rec is not None else got_one for rec in records]
        got = reader.materials(loc, progress)
        res = reader.fetch(got.files, loc.meta.digest, progress)
        if res.damaged:
            return records  # named as nowhere below, never recorded wrong
        by_rel = dict(got.files)
        store.verified += sum(1 for r in records if r is None)
        return [rec if rec is not None else _with_exec(by_rel.get(rel), f)
                for (rel, f), rec in zip(files, records, strict=True)]


def _remote_of(out: Out) -> str:
    """Where --from-remote reads an out's data: the DVC remote, or an import's source registry."""
    return f"its source {out.source.url}" if out.source is not None else "the DVC remote"


def _with_exec(rec: FileRecord | None, f: DvcFile) -> FileRecord | None:
    return None if rec is None else FileRecord(rec.size, rec.digest, rec.chunks, f.executable)


def migrate(root: Path, project: Project | None, targets: list[str], from_remote: bool, prefix: str | None,
            remove_dvc: bool, jobs: int | None, progress: Progress | None = None) -> MigrateResult:
    """Migrate the DVC project at root (see find_root) into the fastreg project made there;
    project None: a dry run (the plan, nothing written)."""
    m = Migration(root, from_remote, prefix, jobs)
    try:
        return _migrate(m, root, project, targets, from_remote, prefix, remove_dvc, progress)
    finally:
        m.close()


def _migrate(m: Migration, root: Path, project: Project | None, targets: list[str], from_remote: bool,
             prefix: str | None, remove_dvc: bool, progress: Progress | None) -> MigrateResult:
    res = MigrateResult(m.plan(targets))
    res.notes = m.notes()
    if project is None:
        names = remote_names(m.dvc_remotes)
        res.remotes = [(names[name], fastreg_url(r, prefix if name == m.default else None, root))
                       for name, r in sorted(m.dvc_remotes.items()) if m.writable(name, r)]
        for plan in res.outs:
            if plan.skip is None:
                files = m.files_of(plan.out)
                if isinstance(files, str):
                    plan.skip, plan.failed = files, True
                    continue
                plan.files = len(files)
                plan.size = plan.out.size or 0
                if not from_remote:
                    nowhere = [(rel, f) for rel, f in files if not m.somewhere(plan.out, rel, f)]
                    if nowhere:  # the real run would find them nowhere too: say so now
                        rel, f = nowhere[0]
                        plan.skip = (f"{len(nowhere)} of its files are nowhere (workspace, DVC cache) with their "
                                     f"md5, e.g. {plan.out.path}/{rel}".rstrip("/") + f" (md5 {f.md5}); "
                                     f"--from-remote reads them from {_remote_of(plan.out)}")
                        plan.failed = True
        return res
    res.remotes = _remotes(project, m)
    if res.remotes:
        project = Project(project.root)  # with its new remotes
    store = _Store(project.cache)
    todo = [p for p in res.outs if p.skip is None]
    phase(progress, "migrate", sum(p.out.size or 0 for p in todo) or None)
    done: dict[str, list[bool]] = {}
    for plan in todo:
        outcome = done.setdefault(plan.dvcfile, [])
        t = project.target(str(root / plan.out.path))
        if t.meta.exists():
            try:
                prior = project.read_meta(t)
            except FastregError:
                prior = None
            if prior is not None and prior.source is not None:
                plan.skip = f"{t.rel}.fastreg is a fastreg import already"
                outcome.append(False)
                continue
        got = m.convert(plan, store, progress, project)
        outcome.append(got is not None)
        if got is None:
            continue
        kind, rec = got
        count = plan.files if kind == "dir" else 1
        meta = metafile.Metafile(t.name, "dir" if kind == "dir" else "file", rec.digest, rec.size, count,
                                 rec.executable, m.import_source(plan.out))
        project.write_meta(t, meta)
        project.ignore(t)  # DVC's /NAME line is the same line: it now belongs to the metafile
        res.files += plan.files
        res.bytes += plan.size
    res.verified, res.saved = store.verified, store.saved
    for name, oks in done.items():
        if all(oks) and (root / name).exists():
            if _git(root, "ls-files", "--", name).strip():
                _git(root, "rm", "-q", "--cached", "--", name)
            (root / name).unlink()
            res.removed.append(name)
    if remove_dvc:
        _remove_dvc(root, res)
    return res


def _remotes(project: Project, m: Migration) -> list[tuple[str, str]]:
    """The DVC remotes fastreg can write to, as fastreg remotes of the same names (once: a
    remote the project has already is left as it is); the DVC default stays the default."""
    from fastreg.repo import remotes

    have = remotes.all_remotes(project.config)
    written = []
    fastreg_dir = project.root / ".fastreg"
    names = remote_names(m.dvc_remotes)
    for dvc_name, remote in sorted(m.dvc_remotes.items()):
        name = names[dvc_name]
        if name in have or not m.writable(dvc_name, remote):
            continue
        url = fastreg_url(remote, m.prefix if dvc_name == m.default else None, project.root)
        first_default = dvc_name == m.default and remotes.default_name(project.config) is None
        remotes.add(fastreg_dir, name, url, default=first_default, local=False)
        for theirs, mine in DVC_OPTIONS:
            if theirs in remote.options:  # a key file's path is this machine's: config.local, as DVC's is
                remotes.modify(fastreg_dir, name, mine, remote.options[theirs],
                               local=mine in ("credentialpath", "keyfile"))
        written.append((name, url))
    return written


def _remove_dvc(root: Path, res: MigrateResult) -> None:
    left = [p for p in res.outs if p.skip is not None]
    if left or _listed(root, "*.dvc"):
        owned = ", ".join(sorted({p.out.path for p in left})[:3]) or "outs of its .dvc files"
        raise UsageError(f"DVC still owns {owned}; .dvc/ stays (migrate those first, or drop --remove-dvc)")
    for name in (".dvc", ".dvcignore"):
        if (root / name).exists():
            if _git(root, "ls-files", "--", name).strip():
                _git(root, "rm", "-r", "-q", "--cached", "--", name)
            shutil.rmtree(root / name) if (root / name).is_dir() else (root / name).unlink()

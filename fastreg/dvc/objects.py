"""A DVC remote's objects, read and verified, and turned into fastreg cache objects.

DVC stores one object per file, named by its md5: DVC 3 under `files/md5/ab/cdef...`, DVC 2 at
the remote's root as `ab/cdef...`; a directory's manifest is the object `<md5>.dir`. Objects are
read with parallel GETs (`jobs` at once: transfer/whole.py, which knows keys, not DVC) through
fastreg's stores (local directory, S3, HTTP),
each checked against its md5 (md5.py) before anything is written, then stored in a fastreg cache
in fastreg's own format (format 2: SHA-256 digest, chunk list). `Md5Map` remembers which cache
object each md5 became, so a second read of the same DVC data finds it in the cache without a
request (a record of format 1, from before format 2, is not used: the data is converted again).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import xxhash

from fastreg.chunking import default_chunker
from fastreg.dvc.formats import DvcFile, DvcRemote, parse_manifest
from fastreg.dvc.md5 import Md5Check
from fastreg.errors import IntegrityError, MetafileError, MissingDataError, RegistryError
from fastreg.objects import codec
from fastreg.objects.digest import CURRENT
from fastreg.objects.tree import FileRecord
from fastreg.progress import Progress
from fastreg.repo import remotes
from fastreg.repo.cache import Cache
from fastreg.storage.base import Store
from fastreg.transfer import whole

#: Remote kinds fastreg reads; DVC knows more (ssh, gs, azure, gdrive, hdfs, webdav, oss, ...).
READABLE = ("local", "s3", "gs", "azure", "ssh", "http")


#: DVC's remote options fastreg takes (DVC's name, fastreg's name)
OPTIONS = (("endpointurl", "endpoint_url"), ("region", "region"), ("profile", "profile"),
           ("credentialpath", "credentialpath"), ("user", "user"), ("port", "port"), ("keyfile", "keyfile"),
           ("account_name", "account_name"), ("account_key", "account_key"), ("sas_token", "sas_token"),
           ("connection_string", "connection_string"))


def object_keys(md5: str, legacy: bool, suffix: str = "") -> list[str]:
    """Where an object may be, the layout of its DVC version first."""
    new = f"files/md5/{md5[:2]}/{md5[2:]}{suffix}"
    old = f"{md5[:2]}/{md5[2:]}{suffix}"
    return [old, new] if legacy else [new, old]


class Md5Map:
    """Which cache object each DVC md5 became, kept beside the cache (`dvc-md5.log`): an
    append-only log of self-checked records, so a torn or damaged record is skipped, never
    believed. Only a conversion whose md5 was verified is recorded."""

    def __init__(self, cache: Cache) -> None:
        self.path = cache.root / "dvc-md5.log"
        self._known: dict[tuple[str, bool], FileRecord] | None = None

    def _load(self) -> dict[tuple[str, bool], FileRecord]:
        if self._known is None:
            self._known = {}
            try:
                with open(self.path, "rb") as f:
                    for item in codec.stream_unpacker(f):
                        self._take(item)
            except FileNotFoundError:
                pass
            except ValueError:
                pass  # a torn tail: what came before it counts
        return self._known

    def _take(self, item: object) -> None:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
            return
        body, check = item
        if xxhash.xxh3_64_intdigest(body) != check:
            return
        md5, legacy, size, digest, chunks, executable = codec.unpackb(body)
        assert self._known is not None
        self._known[(md5, legacy)] = FileRecord(size, digest, chunks, executable)

    def get(self, f: DvcFile) -> FileRecord | None:
        rec = self._load().get(f.key)
        if rec is None or len(rec.digest) != CURRENT:
            return None
        return FileRecord(rec.size, rec.digest, rec.chunks, f.executable)

    def add(self, items: list[tuple[DvcFile, FileRecord]]) -> None:
        if not items:
            return
        out = bytearray()
        known = self._load()
        for f, rec in items:
            known[f.key] = rec
            body = codec.packb([f.md5, f.legacy, rec.size, rec.digest, rec.chunks, False])
            out += codec.packb([body, xxhash.xxh3_64_intdigest(body)])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, bytes(out))
        finally:
            os.close(fd)


def convert(data: bytes, f: DvcFile, cache: Cache, where: str) -> FileRecord:
    """Bytes of a DVC object, verified against f's md5, into the cache in fastreg's format."""
    check = Md5Check(f.legacy)
    check.update(data)
    if not check.matches(f.md5):
        raise IntegrityError(f"{where}: its bytes do not match md5 {f.md5} (a damaged object?); nothing written")
    digest, chunks = default_chunker().digest_buffer(data)
    cache.put_bytes(data, digest)
    return FileRecord(len(data), digest, chunks, f.executable)


class DvcObjects:
    """One DVC remote, read. `base`: where a relative local remote url starts (the registry's
    `.dvc/` folder, for a registry on this machine)."""

    def __init__(self, remote: DvcRemote, base: Path | None, jobs: int | None, out_path: str) -> None:
        if remote.kind not in READABLE:
            raise RegistryError(f"{out_path}: its DVC remote {remote.name!r} is {remote.kind} ({remote.url}); fastreg "
                                "reads local, S3, GCS, Azure, SSH and HTTP(S) remotes only")
        opts = remote.options
        url = remote.url.removeprefix("file://")
        if remote.kind == "local" and not os.path.isabs(os.path.expanduser(url)) and base is None:
            raise RegistryError(f"the DVC remote {remote.name!r} is a relative local path ({remote.url}); it only "
                                "works for a registry on this machine")
        self.remote = remotes.Remote(remote.name, url, {"read_only": True, **{
            mine: opts[theirs] for theirs, mine in OPTIONS if theirs in opts}})
        self.base = base or Path.cwd()
        # One GET per file: more requests in flight than the remote's usual jobs only add thread and
        # GIL contention on the client (16 and 64 at once move the same objects per second from S3).
        self.jobs = jobs or self.remote.default_jobs()
        self.where = remote.url

    def _store(self) -> Store:
        return remotes.open_store(self.remote, self.base, self.jobs)

    def manifest(self, md5: str, legacy: bool, path: str, cached: Path) -> list[tuple[str, DvcFile]]:
        """A directory's manifest: from the manifest cache when it is there, else from the
        remote; verified against its md5 either way (and cached once verified)."""
        name = cached / md5[:2] / f"{md5[2:]}.dir"
        try:
            data = name.read_bytes()
            return parse_manifest(data, md5, legacy, path)
        except (FileNotFoundError, MetafileError):
            pass
        got = whole.get_one(self._store, object_keys(md5, legacy, ".dir"))
        if got is None:
            raise MissingDataError(f"{path}: its manifest md5 {md5}.dir is not in the DVC remote {self.where}")
        entries = parse_manifest(got, md5, legacy, path)
        name.parent.mkdir(parents=True, exist_ok=True)
        tmp = name.with_name(f"{name.name}.{os.urandom(4).hex()}.tmp")
        tmp.write_bytes(got)
        os.replace(tmp, name)
        return entries

    def bring(self, wanted: list[tuple[str, DvcFile]], cache: Cache, progress: Progress | None,
              on_file: Callable[[DvcFile, FileRecord], None]) -> int:
        """Download, verify and convert these files into the cache (each md5 once, `jobs` GETs
        at once), calling on_file as each lands; the bytes downloaded. The first failure stops
        the rest and is raised once the requests in flight have finished (what they brought
        stays)."""
        unique: dict[tuple[str, bool], tuple[str, DvcFile]] = {}
        for path, f in wanted:
            unique.setdefault(f.key, (path, f))

        def handle(item: tuple[str, DvcFile], data: bytes) -> FileRecord:
            path, f = item
            return convert(data, f, cache, f"{path} (md5 {f.md5})")

        def done(item: tuple[str, DvcFile], rec: FileRecord, nbytes: int) -> None:
            on_file(item[1], rec)
            if progress is not None:
                progress(1, nbytes)

        def missing(item: tuple[str, DvcFile]) -> Exception:
            return MissingDataError(f"{item[0]}: md5 {item[1].md5} is not in the DVC remote {self.where}")

        items = [((p, f), object_keys(f.md5, f.legacy)) for p, f in unique.values()]
        return whole.get_many(self._store, items, self.jobs, handle, done, missing)

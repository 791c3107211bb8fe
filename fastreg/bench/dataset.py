"""`fastreg bench --dataset PATH`: push and pull a real directory through fastreg's own pipeline
(chunking, packing, dedup, ranged reads, verification) into a fresh remote under the bench prefix,
and say where the time went.

Phases, each timed on its own:
- scan: walk the directory and stat every file (what `status` costs when nothing changed);
- hash: chunk and hash every file and store it in a temporary cache (what a first `add` costs;
  the copy into the cache is part of it, as in `add`);
- upload: plan (what the remote lacks), pack and PUT (`push`);
- download: plan ranged GETs, fetch, verify every chunk and file digest, write into an empty
  temporary cache (`fetch`);
- verify: hash every downloaded file again and compare with the source's digests (the bench's own
  check that the round trip came back byte-identical).

The dataset is only read. The temporary caches live in the system's temp directory (TMPDIR); the
push side's cache is removed before the pull starts, so the run needs the dataset's size free there
once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreg.chunking import default_chunker
from fastreg.errors import FileSystemError, IntegrityError, PathError
from fastreg.objects import tree
from fastreg.repo.build import Builder, now_ns
from fastreg.repo.cache import Cache
from fastreg.repo.statcache import StatCache, StatCacheWriter, StatFile
from fastreg.storage.base import Store
from fastreg.transfer.push_plan import PushTarget
from fastreg.transfer.session import open_session

PHASES = ("scan", "hash", "upload", "download", "verify")


@dataclass(slots=True)
class DatasetResult:
    path: str
    files: int = 0
    bytes: int = 0
    uploaded_bytes: int = 0
    packs: int = 0
    push_requests: int = 0
    downloaded_bytes: int = 0
    pull_requests: int = 0
    phases: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        total = sum(self.phases.values()) or 1.0
        push_s = self.phases.get("upload", 0.0)
        pull_s = self.phases.get("download", 0.0)
        return {
            "path": self.path, "files": self.files, "bytes": self.bytes,
            "push": {"seconds": round(push_s, 4), "bytes": self.uploaded_bytes, "packs": self.packs,
                     "requests": self.push_requests,
                     "mib_per_s": round(self.uploaded_bytes / push_s / (1 << 20), 2) if push_s else None},
            "pull": {"seconds": round(pull_s, 4), "bytes": self.downloaded_bytes, "requests": self.pull_requests,
                     "mib_per_s": round(self.downloaded_bytes / pull_s / (1 << 20), 2) if pull_s else None},
            "phases": {k: round(v, 4) for k, v in self.phases.items()},
            "shares": {k: round(v / total, 4) for k, v in self.phases.items()},
        }


def _scan(root: str) -> tuple[int, int]:
    files = size = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files += 1
                    size += e.stat(follow_symlinks=False).st_size
    return files, size


def check_dataset(path: Path) -> tuple[int, int]:
    """(files, bytes) of the dataset; a clear error when it is not a usable directory or the temp
    directory cannot hold a copy of it."""
    if not path.is_dir():
        raise PathError(f"--dataset {path}: not a directory")
    files, size = _scan(str(path))
    if files == 0:
        raise PathError(f"--dataset {path}: has no files")
    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free
    if free < size * 1.1 + (64 << 20):
        raise FileSystemError(f"--dataset {path}: needs {size * 1.1 / 2**30:.1f} GiB free in {tmp} for a temporary "
                           f"cache, {free / 2**30:.1f} GiB free; set TMPDIR to a roomier place")
    return files, size


def round_trip(path: Path, make_store: Any, jobs: int, pack_size: int) -> DatasetResult:
    """Push `path` to the store `make_store()` opens (an empty prefix), then pull it into an empty
    cache; `make_store` is called once per side so each gets its own connections and mirror."""
    res = DatasetResult(str(path))
    t0 = time.perf_counter()
    res.files, res.bytes = _scan(str(path))
    res.phases["scan"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="fastreg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        push_cache = Cache(tmp / "push-cache", ("reflink", "copy"))  # never a hardlink: the dataset stays as it is
        push_cache.ensure()
        t0 = time.perf_counter()
        old = StatCache(tmp / "stat", "dataset")
        writer = StatCacheWriter(old, now_ns())
        with ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="fastreg-hash") as pool:
            root = Builder(push_cache, StatFile(old.path), writer, pool).build_dir(str(path), "")
        writer.abort()
        res.phases["hash"] = time.perf_counter() - t0
        records = [rec for _, rec in tree.walk(push_cache, root.digest)]
        files = list({r.digest: r for r in records}.values())

        store: Store = make_store()
        with open_session(store, push_cache, tmp / "push-state", jobs) as session:
            t0 = time.perf_counter()
            target = PushTarget(str(path), "dir", root.digest, root.size, files=root.files)
            pushed = session.push([target], pack_size)
            res.phases["upload"] = time.perf_counter() - t0
        res.uploaded_bytes, res.packs, res.push_requests = pushed.bytes, pushed.packs, pushed.requests
        shutil.rmtree(push_cache.root)

        pull_cache = Cache(tmp / "pull-cache", ("copy",))
        pull_cache.ensure()
        store = make_store()
        with open_session(store, pull_cache, tmp / "pull-state", jobs) as session:
            t0 = time.perf_counter()
            session.check_format()
            session.fetch_trees([root.digest])
            fetched = session.fetch_files(files, [root.digest])
            res.phases["download"] = time.perf_counter() - t0
        res.downloaded_bytes, res.pull_requests = fetched.bytes, fetched.requests

        t0 = time.perf_counter()
        _verify(pull_cache, files)
        res.phases["verify"] = time.perf_counter() - t0
    return res


def _verify(cache: Cache, files: list[tree.FileRecord]) -> None:
    chunker = default_chunker()
    paths = [str(cache.file_path(r.digest)) for r in files]
    for i in range(0, len(paths), 256):
        try:
            got = chunker.hash_files(paths[i : i + 256])
        except FileNotFoundError as exc:
            raise IntegrityError(f"the pull did not bring back {exc.filename}") from None
        for rec, h in zip(files[i : i + 256], got, strict=True):
            if h.size != rec.size or h.digest != rec.digest:
                raise IntegrityError(f"file {rec.digest.hex()} came back different from what was pushed")

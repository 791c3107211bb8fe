"""One reader of bench/train_read.py, through a real torch DataLoader (run by the python of a
benchmark virtualenv that has torch: the fastreg one, or DVC's). Prints one JSON line.

    python bench/train_loader.py MODE --repo URL --path PATH --rev REV [--cache DIR] [--epochs N]
        [--limit N] [--local DIR] [--workers 4] [--batch 64]

MODE: local (files on local disk, open/read per file, shuffled), iter (RegistryIterableDataset),
map (RegistryDataset, shuffled), fsspec (fastreg:// open per file, shuffled), dvc (DVC's
DVCFileSystem, read per file, shuffled). Every worker is kept alive to the end of the last epoch
(persistent_workers) so that its peak RSS (VmHWM) and its PSS can be read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def count(batch: list[Any]) -> tuple[int, int]:
    """A collate that keeps no bytes: (samples, bytes) of the batch."""
    return len(batch), sum(len(s) if isinstance(s, bytes | bytearray) else len(s[0]) for s in batch)


class LocalFiles(Dataset):  # type: ignore[type-arg]
    """ImageFolder-style: the sorted files of a folder, each read with open/read."""

    def __init__(self, root: str) -> None:
        self.files = sorted(str(p) for p in Path(root).rglob("*") if p.is_file())

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> bytes:
        with open(self.files[i], "rb") as f:
            return f.read()


class FsspecFiles(Dataset):  # type: ignore[type-arg]
    """fastreg:// open per file (one fsspec filesystem per worker process)."""

    def __init__(self, repo: str, path: str, rev: str) -> None:
        import fsspec

        fs = fsspec.filesystem("fastreg", repo=repo, rev=rev)
        self.files = sorted(fs.find(path))
        self.repo, self.rev = repo, fs.rev
        self._fs: Any = None
        self._pid = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> bytes:
        if self._pid != os.getpid():
            import fsspec

            self._fs = fsspec.filesystem("fastreg", repo=self.repo, rev=self.rev, skip_instance_cache=True)
            self._pid = os.getpid()
        with self._fs.open(self.files[i], "rb") as f:
            return f.read()  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": 0}


class DvcFiles(Dataset):  # type: ignore[type-arg]
    """DVC's DVCFileSystem, read per file (one filesystem per worker process)."""

    def __init__(self, repo: str, path: str, rev: str) -> None:
        from dvc.api import DVCFileSystem

        fs = DVCFileSystem(repo, rev=rev)
        self.files = sorted(fs.find(path))
        self.repo, self.rev = repo, rev
        self._fs: Any = None
        self._pid = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> bytes:
        if self._pid != os.getpid():
            from dvc.api import DVCFileSystem

            self._fs, self._pid = DVCFileSystem(self.repo, rev=self.rev), os.getpid()
        return self._fs.read_bytes(self.files[i])  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": 0}


def _proc_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _cache_bytes(cache: str | None) -> int:
    """What the cache holds once the workers' writes behind the epoch have settled."""
    usage = Path(cache) / "usage" if cache else None
    if usage is None:
        return 0
    last = -1
    for _ in range(20):
        now = int(usage.read_text() or 0) if usage.exists() else 0
        if now == last:
            return now
        last = now
        time.sleep(0.25)
    return last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["local", "iter", "map", "fsspec", "dvc"])
    ap.add_argument("--repo", default="")
    ap.add_argument("--path", default="")
    ap.add_argument("--rev", default=None)
    ap.add_argument("--local", default="")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--cache-limit", type=int, default=None, help="bytes (0: keep nothing)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="read only this many samples (a random subset)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    t0 = time.perf_counter()
    ds: Any
    if a.mode == "local":
        ds = LocalFiles(a.local)
    elif a.mode == "iter":
        from fastreg.data import RegistryIterableDataset

        ds = RegistryIterableDataset(a.repo, a.path, rev=a.rev, seed=0, cache_dir=a.cache, cache_limit=a.cache_limit)
    elif a.mode == "map":
        from fastreg.data import RegistryDataset

        ds = RegistryDataset(a.repo, a.path, rev=a.rev, cache_dir=a.cache, cache_limit=a.cache_limit)
    elif a.mode == "fsspec":
        ds = FsspecFiles(a.repo, a.path, a.rev)
    else:
        ds = DvcFiles(a.repo, a.path, a.rev)
    setup = time.perf_counter() - t0
    sampler: Any = None
    shuffle = a.mode != "iter"
    if a.limit and a.mode != "iter":
        sampler = random.Random(1).sample(range(len(ds)), min(a.limit, len(ds)))
        shuffle = False
    loader = DataLoader(ds, batch_size=a.batch, num_workers=a.workers, collate_fn=count, shuffle=shuffle,
                        sampler=sampler, persistent_workers=True, generator=torch.Generator().manual_seed(0))
    epochs = []
    for epoch in range(a.epochs):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        t = time.perf_counter()
        n = nbytes = 0
        for k, b in loader:
            n += k
            nbytes += b
        seconds = time.perf_counter() - t
        kept = _cache_bytes(a.cache)
        epochs.append({"samples": n, "bytes": nbytes, "seconds": seconds, "cache_bytes": kept})
    workers = _children()
    rss = max((_proc_kb(p, "VmHWM") for p in workers), default=0)
    pss = max((_pss_kb(p) for p in workers), default=0)
    print(json.dumps({"mode": a.mode, "setup": setup, "epochs": epochs, "worker_peak_rss_mib": rss / 1024,
                      "worker_pss_mib": pss / 1024, "workers_seen": len(workers),
                      "parent_peak_rss_mib": _proc_kb(os.getpid(), "VmHWM") / 1024}))
    del loader


if __name__ == "__main__":
    main()

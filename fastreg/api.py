"""The Python API: read data from a registry by Git URL and revision.

    import fastreg.api
    with fastreg.api.open("use-cases/cats-dogs/data/train/cats/cat.0001.jpg", repo=URL, rev="v1") as f:
        head = f.read(16)
    text = fastreg.api.read("README.md", repo=URL)                  # plain Git files work too
    fastreg.api.get("use-cases/cats-dogs", repo=URL, out="cats-dogs")

Tracked files are fetched into the user-level cache (only the chunks of that file, by ranged
reads, verified) and opened from there; a second open of the same data downloads nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fastreg.errors import FastregError, PathError


def _local_file(path: str, repo: str, rev: str | None) -> tuple[Path | None, bytes | None]:
    """The cached file for a tracked path, or the bytes of a plain Git file."""
    from fastreg.objects.tree import FileRecord
    from fastreg.registry import ops as reg

    registry = reg.Registry(repo, rev)
    loc = registry.locate(path)
    if loc.meta is None:
        return None, registry.git.read(registry.commit, loc.target) or b""
    cache = reg.user_cache()
    with registry.session(cache, None) as session:
        files, kind, *_ = reg._select(registry, loc, session, cache)
        if kind != "file":
            raise PathError(f"{path}: a directory; open its files, or use fastreg.api.get to download it")
        rec: FileRecord = files[0][1]
        session.fetch_files([rec], [loc.meta.digest])
    return cache.file_path(rec.digest), None


@contextmanager
def open(path: str, repo: str, rev: str | None = None, mode: str = "rb",
         encoding: str | None = None) -> Iterator[IO[Any]]:
    """A registry file as a read-only file object (binary with mode="rb", text with mode="r")."""
    if mode not in ("r", "rb", "rt"):
        raise FastregError(f"mode {mode!r}: registry files are read-only; use 'r' or 'rb'")
    local, data = _local_file(path, repo, rev)
    if local is not None:
        f: IO[Any] = local.open(mode, encoding=encoding) if "b" not in mode else local.open("rb")
    else:
        assert data is not None
        f = io.BytesIO(data) if "b" in mode else io.TextIOWrapper(io.BytesIO(data), encoding=encoding or "utf-8")
    try:
        yield f
    finally:
        f.close()


def read(path: str, repo: str, rev: str | None = None, mode: str = "r", encoding: str | None = None) -> Any:
    """The whole content of a registry file: str with mode="r", bytes with mode="rb"."""
    with open(path, repo=repo, rev=rev, mode=mode, encoding=encoding) as f:
        return f.read()


def get(path: str, repo: str, out: str | None = None, rev: str | None = None, jobs: int | None = None) -> Path:
    """Download a tracked file or directory (or a plain Git file) to out; returns where it went."""
    from fastreg.registry import ops as reg

    return reg.get(repo, path, out, rev, jobs).out

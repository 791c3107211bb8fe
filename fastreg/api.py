"""The Python API: read data from a registry by Git URL and revision.

    import fastreg.api
    with fastreg.api.open("use-cases/cats-dogs/data/train/cats/cat.0001.jpg", repo=URL, rev="v1") as f:
        head = f.read(16)
    text = fastreg.api.read("README.md", repo=URL)                  # plain Git files work too
    fastreg.api.get("use-cases/cats-dogs", repo=URL, out="cats-dogs")

Errors are FastregErrors; a path that is not there is also a FileNotFoundError, a directory
opened as a file also an IsADirectoryError.

open() streams: each read fetches only the chunks it touches (ranged GETs, verified against their
digests); a file already in the user-level cache is read from there. get() downloads into that
cache, so a later open() of the same data downloads nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fastreg.errors import UsageError


@contextmanager
def open(path: str, repo: str, rev: str | None = None, mode: str = "rb",
         encoding: str | None = None) -> Iterator[IO[Any]]:
    """A registry file as a read-only, seekable file object (binary with mode="rb", text with
    mode="r"). Reads fetch only the chunks they touch; plain Git files come from the mirror."""
    from fastreg.registry.kinds import open_reader

    if mode not in ("r", "rb", "rt"):
        raise UsageError(f"mode {mode!r}: registry files are read-only; use 'r' or 'rb'")
    with open_reader(repo, rev) as reader:
        f: IO[Any] = io.BufferedReader(reader.open(reader.locate(path)), buffer_size=1 << 20)
        if "b" not in mode:
            f = io.TextIOWrapper(f, encoding=encoding or "utf-8")
        with f:
            yield f


def read(path: str, repo: str, rev: str | None = None, mode: str = "r", encoding: str | None = None) -> Any:
    """The whole content of a registry file: str with mode="r", bytes with mode="rb"."""
    with open(path, repo=repo, rev=rev, mode=mode, encoding=encoding) as f:
        return f.read()


def get(path: str, repo: str, out: str | None = None, rev: str | None = None, jobs: int | None = None) -> Path:
    """Download a tracked file or directory (or a plain Git file) to out; returns where it went."""
    from fastreg.registry import ops as reg

    return reg.get(repo, path, out, rev, jobs).out

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

import bisect
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fastreg.errors import DirectoryPathError, UsageError
from fastreg.storage.base import Positioned


class _RemoteFile(Positioned, io.RawIOBase):
    """A read-only, seekable view of a registry file that fetches only the chunks a read
    touches (one ranged GET each, verified), keeping the last few in memory."""

    def __init__(self, session: Any, chunks: list[tuple[bytes, int]], size: int, roots: list[bytes]) -> None:
        self._session = session
        self._roots = roots
        self._chunks = chunks
        self._starts = list(itertools.accumulate([0] + [n for _, n in chunks]))[:-1]
        self._size = size
        self._pos = 0
        self._recent: dict[int, bytes] = {}

    def _chunk(self, i: int) -> bytes:
        if i not in self._recent:
            if len(self._recent) >= 4:
                self._recent.pop(next(iter(self._recent)))
            digest, length = self._chunks[i]
            self._recent[i] = self._session.read_chunk(digest, length, self._roots)
        return self._recent[i]

    def readinto(self, b: Any) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        data = self._chunk(i)
        off = self._pos - self._starts[i]
        n = min(len(b), len(data) - off)
        b[:n] = data[off : off + n]
        self._pos += n
        return n


@contextmanager
def open(path: str, repo: str, rev: str | None = None, mode: str = "rb",
         encoding: str | None = None) -> Iterator[IO[Any]]:
    """A registry file as a read-only, seekable file object (binary with mode="rb", text with
    mode="r"). Reads fetch only the chunks they touch; plain Git files come from the mirror."""
    from fastreg.chunking import iter_chunks
    from fastreg.registry import ops as reg

    if mode not in ("r", "rb", "rt"):
        raise UsageError(f"mode {mode!r}: registry files are read-only; use 'r' or 'rb'")
    registry = reg.Registry(repo, rev)
    loc = registry.locate(path)
    raw: io.RawIOBase | io.BytesIO
    session = None
    if loc.meta is None:
        raw = io.BytesIO(registry.git.read(registry.commit, loc.target) or b"")
    else:
        cache = reg.user_cache()
        session = registry.session(cache, None)
        try:
            got = reg.select_files(registry, loc, session, cache)
            if got.kind != "file":
                raise DirectoryPathError(f"{path}: a directory; open its files, or use fastreg.api.get to "
                                         "download it")
            rec = got.files[0][1]
            if cache.has_file(rec.digest):
                raw = cache.file_path(rec.digest).open("rb", buffering=0)
            else:
                chunks = iter_chunks(rec.chunks, rec.digest, rec.size)
                if any(not session.mirror.has(d) for d, _ in chunks):
                    session.refresh([loc.meta.digest])
                raw = _RemoteFile(session, chunks, rec.size, [loc.meta.digest])
        except BaseException:
            session.__exit__(None, None, None)
            raise
    f: IO[Any] = io.BufferedReader(raw, buffer_size=1 << 20)
    if "b" not in mode:
        f = io.TextIOWrapper(f, encoding=encoding or "utf-8")
    try:
        yield f
    finally:
        f.close()
        if session is not None:
            session.__exit__(None, None, None)


def read(path: str, repo: str, rev: str | None = None, mode: str = "r", encoding: str | None = None) -> Any:
    """The whole content of a registry file: str with mode="r", bytes with mode="rb"."""
    with open(path, repo=repo, rev=rev, mode=mode, encoding=encoding) as f:
        return f.read()


def get(path: str, repo: str, out: str | None = None, rev: str | None = None, jobs: int | None = None) -> Path:
    """Download a tracked file or directory (or a plain Git file) to out; returns where it went."""
    from fastreg.registry import ops as reg

    return reg.get(repo, path, out, rev, jobs).out

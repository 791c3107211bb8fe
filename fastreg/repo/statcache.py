"""The stat cache: (inode, size, mtime_ns) -> digest and chunks, per target, so that `add` and
`status` with nothing changed read no file contents.

One file per target under .fastreg/state/stat/, a stream of msgpack arrays
[relpath, ino, size, mtime_ns, digest, chunks] written temp-then-rename.  Memory when loaded:
a dict entry per file (~250 bytes), only for targets that were added before.

Racy entries are never stored: a file whose mtime is within RACY_NS of the moment hashing began
could be rewritten in the same timestamp tick without its stat changing, so it is left out and
simply hashed again next time (the "racy git" problem).

Files that checkout writes are the exception ("settled"): their mtime is moved one nanosecond
into the past while they still sit under a private temp name (see `settle`), so any later write
to them, even in the same timestamp tick, gives a different mtime.  They are stored at once;
otherwise every file of a pull would be hashed again by the next `status`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import xxhash

from fastreg.errors import DecodeError
from fastreg.objects import codec

RACY_NS = 50_000_000  # 50 ms: several timestamp ticks on every Linux filesystem

Entry = tuple[int, int, int, bytes, bytes]  # ino, size, mtime_ns, digest, chunks


def _key(st: os.stat_result | tuple[int, ...]) -> tuple[int, int, int]:
    """(ino, size, mtime_ns) from an os.stat_result or a tuple that starts with them. The
    stat_result test comes first: it is a tuple too, whose first items are mode, ino and dev."""
    if isinstance(st, os.stat_result):
        return st.st_ino, st.st_size, st.st_mtime_ns
    return st[0], st[1], st[2]


class StatCache:
    def __init__(self, state_dir: Path, target_rel: str) -> None:
        self.path = state_dir / "stat" / xxhash.xxh3_64_hexdigest(target_rel.encode())
        self.entries: dict[str, Entry] = {}
        self.changed = False

    def load(self) -> StatCache:
        try:
            with open(self.path, "rb") as f:
                for rec in codec.stream_unpacker(f):
                    rel, ino, size, mtime, digest, chunks = rec
                    self.entries[rel] = (ino, size, mtime, digest, chunks)
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, DecodeError):
            self.entries = {}  # a damaged stat cache only costs a re-hash
        except Exception as exc:  # msgpack's own exception types
            if type(exc).__module__.startswith("msgpack"):
                self.entries = {}
            else:
                raise
        return self

    def lookup(self, rel: str, st: os.stat_result | tuple[int, ...]) -> tuple[bytes, bytes] | None:
        e = self.entries.get(rel)
        if e is not None and (e[0], e[1], e[2]) == _key(st):
            return e[3], e[4]
        return None

    def record(self, rel: str, st: os.stat_result | tuple[int, ...], digest: bytes, chunks: bytes,
               started_ns: int, settled: bool = False) -> None:
        ino, size, mtime_ns = _key(st)
        if not settled and mtime_ns >= started_ns - RACY_NS:
            if rel in self.entries:
                del self.entries[rel]
                self.changed = True
            return
        new = (ino, size, mtime_ns, digest, chunks)
        if self.entries.get(rel) != new:
            self.entries[rel] = new
            self.changed = True

    def save(self, keep: set[str] | None = None) -> None:
        """Write the cache (only entries in keep, if given) atomically."""
        if not self.changed and keep is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.urandom(4).hex()}.tmp")
        try:
            with open(tmp, "wb") as f:
                for rel in sorted(self.entries, key=canonical):
                    if keep is not None and rel not in keep:
                        continue
                    f.write(codec.packb([rel, *self.entries[rel]]))
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def canonical(rel: str) -> list[str]:
    """The order of a tree walk (names compared folder by folder): stat caches are written in
    it, so a status can stream one alongside the tree and the workspace (stream())."""
    return rel.split("/")


def stream(path: Path) -> Iterator[tuple[str, Entry]]:
    """The entries of a stat cache file in the order they were written, one at a time; a
    missing or damaged file ends the stream (its entries then only cost a re-hash)."""
    try:
        with open(path, "rb") as f:
            for rec in codec.stream_unpacker(f):
                rel, ino, size, mtime, digest, chunks = rec
                yield rel, (ino, size, mtime, digest, chunks)
    except FileNotFoundError:
        return
    except (ValueError, TypeError, DecodeError):
        return
    except Exception as exc:  # msgpack's own exception types
        if not type(exc).__module__.startswith("msgpack"):
            raise


class StatStream:
    """A stat cache read as a stream for lookups in tree order (add walks in that order): memory
    is one entry, not one per file. Lookups must come with non-decreasing canonical keys; an
    entry passed over is simply not found (a re-hash)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._it = stream(path)
        self._head: tuple[str, Entry] | None = next(self._it, None)
        self._key = canonical(self._head[0]) if self._head is not None else None

    def __bool__(self) -> bool:
        return self._head is not None

    def lookup(self, rel: str, st: os.stat_result | tuple[int, ...]) -> tuple[bytes, bytes] | None:
        key = canonical(rel)
        while self._head is not None and self._key is not None and self._key < key:
            self._head = next(self._it, None)
            self._key = canonical(self._head[0]) if self._head is not None else None
        if self._head is None or self._head[0] != rel:
            return None
        e = self._head[1]
        return (e[3], e[4]) if (e[0], e[1], e[2]) == _key(st) else None


def settle(tmp: str | Path) -> tuple[int, int, int] | None:
    """Make a freshly written file, still under a temp name no one else knows, safe to record
    in the stat cache at once: set its mtime 1 ns before the time of our last write (M).  Any
    later write stamps it with a time >= M (the clock only moves forward), so a change made
    right after the rename, even in the same timestamp tick, can never leave the recorded stat
    intact.  Returns the stat key to record, or None when the filesystem did not keep a time
    strictly before M (coarse or ignored timestamps): then the racy rule applies as usual."""
    st = os.stat(tmp)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns - 1))
    after = os.stat(tmp)
    if after.st_mtime_ns >= st.st_mtime_ns or after.st_ino != st.st_ino or after.st_size != st.st_size:
        return None
    return after.st_ino, after.st_size, after.st_mtime_ns


class StatCacheWriter:
    """Streams a fresh stat cache to disk while `add` walks a target, so a cold add of N files
    holds no per-file stat entries in memory; commit() replaces the old cache atomically."""

    def __init__(self, cache: StatCache, started_ns: int) -> None:
        self.path = self._final = cache.path
        self._final.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._final.with_name(f"{self._final.name}.{os.urandom(4).hex()}.tmp")
        self._f = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self._started_ns = started_ns

    def append(self, rel: str, key: tuple[int, int, int], digest: bytes, chunks: bytes,
               settled: bool = False) -> None:
        """key: (ino, size, mtime_ns) of the file as it was read (or, settled, as settle() left it)."""
        if settled or key[2] < self._started_ns - RACY_NS:
            self._f.write(codec.packb([rel, *key, digest, chunks]))

    def commit(self) -> None:
        self._f.close()
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

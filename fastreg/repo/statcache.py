"""The stat cache: (inode, size, mtime_ns) -> digest and chunks, per target, so that `add` and
`status` with nothing changed read no file contents; and per folder, a fingerprint that lets
them skip the folder's files altogether.

One file per target under .fastreg/state/stat/, written temp-then-rename:

    MAGIC | blocks of entries | index | footer (index offset uint64, MAGIC)

An entry is the msgpack array [name, ino, size, mtime_ns, digest, chunks]; the entries of one
folder lie in one or a few blocks (spans). The index (msgpack) is [removal token, folders] with
one record per folder: [prefix, spans, fingerprint, tree, size, files, subfolders, stored].
`fingerprint` is the digest of the folder's listing (names, inodes, sizes, mtimes and modes of
its files, names of its folders: _files.list_folder) at a moment when its files matched the tree
node `tree`, and `subfolders` the (name, digest, size, files) of that node's folders. A status
or add that finds the same fingerprint and the same node knows the folder is unchanged without
reading one entry: memory holds the index (one record per folder) and one folder's entries at a
time. `stored`: add wrote the record, having stored every file in the cache, so a later add may
reuse the node as it is, unless an object left the cache since (the removal token changed:
Cache.removals).

Racy entries are never stored: a file whose mtime is within RACY_NS of the moment hashing began
could be rewritten in the same timestamp tick without its stat changing, so it is left out and
simply hashed again next time (the "racy git" problem). A fingerprint is stored under the same
rule, for its newest file.

A file whose stat cannot be trusted yet (racy), and a tracked file found missing from the
workspace after it was here, keep a *presence* entry: size -1 (which no stat matches), no digest.
The stat cache so also answers "was this file ever in this workspace?": a recorded file with no
entry at all was never checked out here (a partial pull, a pull killed midway, objects another
project put in a shared cache) and is "not in the workspace", while one with an entry that is
gone now was deleted by the user. `add` keeps the first kind in the new version.

Files that checkout writes are the exception ("settled"): their mtime is moved one nanosecond
into the past while they still sit under a private temp name (see `settle`), so any later write
to them, even in the same timestamp tick, gives a different mtime.  They are stored at once;
otherwise every file of a pull would be hashed again by the next `status`."""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from fastreg.errors import DecodeError
from fastreg.objects import codec

RACY_NS = 50_000_000  # 50 ms: several timestamp ticks on every Linux filesystem

Entry = tuple[int, int, int, bytes, bytes]  # ino, size, mtime_ns, digest, chunks
PRESENT = -1  # the size of a presence entry: the file was here; its stat is not trusted


def _key(st: os.stat_result | tuple[int, ...]) -> tuple[int, int, int]:
    """(ino, size, mtime_ns) from an os.stat_result or a tuple that starts with them. The
    stat_result test comes first: it is a tuple too, whose first items are mode, ino and dev."""
    if isinstance(st, os.stat_result):
        return st.st_ino, st.st_size, st.st_mtime_ns
    return st[0], st[1], st[2]


MAGIC = b"FRSTAT2\n"
FOOTER = struct.Struct(">Q8s")  # index offset, MAGIC
Sub = tuple[str, bytes, int, int]  # name, digest, size, files of a folder in a tree node


@dataclass(slots=True)
class FolderRec:
    """A folder's record in the index: where its entries are, and its fingerprint (empty when
    none was recorded: the folder did not match its tree node, or its newest file was racy)."""

    spans: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of its blocks
    fingerprint: bytes = b""
    tree: bytes = b""
    size: int = 0
    files: int = 0
    subs: tuple[Sub, ...] = ()
    # Written by add, which stored every file of the folder in the cache: add may reuse `tree`
    # as it is (as long as no object left the cache since: StatFile.removals)
    stored: bool = False

    def matches(self, fingerprint: bytes, tree: bytes) -> bool:
        return bool(self.fingerprint) and self.fingerprint == fingerprint and self.tree == tree


def split(rel: str) -> tuple[str, str]:
    """("a/b/", "c.jpg") for "a/b/c.jpg": the folder prefix the index is keyed by, and the name."""
    i = rel.rfind("/") + 1
    return rel[:i], rel[i:]


def fingerprint(listing: bytes) -> bytes:
    return xxhash.xxh3_128_digest(listing)


class StatFile:
    """An existing stat cache, read by folder: the index at once, a folder's entries when asked.
    A missing, damaged or older-format file reads as empty (its entries only cost a re-hash)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folders: dict[str, FolderRec] = {}
        self.removals = b""  # the cache's removal token when this file was written (Cache.removals)
        self._had: set[str] | None = None  # folder prefixes with entries at or below them
        self._fd = -1
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.folders = self._index()
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, DecodeError, struct.error):
            self.folders = {}

    def _index(self) -> dict[str, FolderRec]:
        end = os.fstat(self._fd).st_size
        if end < len(MAGIC) + FOOTER.size or os.pread(self._fd, len(MAGIC), 0) != MAGIC:
            return {}
        at, magic = FOOTER.unpack(os.pread(self._fd, FOOTER.size, end - FOOTER.size))
        if magic != MAGIC or not len(MAGIC) <= at <= end - FOOTER.size:
            return {}
        out = {}
        removals, folders = codec.unpackb(os.pread(self._fd, end - FOOTER.size - at, at))
        for prefix, spans, fp, tree, size, files, subs, stored in folders:
            out[prefix] = FolderRec([(o, n) for o, n in spans], fp, tree, size, files,
                                    tuple((n, d, sz, f) for n, d, sz, f in subs), bool(stored))
        self.removals = bytes(removals)
        return out

    def __bool__(self) -> bool:
        return bool(self.folders)

    def folder(self, prefix: str) -> FolderRec | None:
        return self.folders.get(prefix)

    def raw(self, prefix: str) -> bytes:
        rec = self.folders.get(prefix)
        if rec is None:
            return b""
        return b"".join(os.pread(self._fd, n, o) for o, n in rec.spans)

    def entries(self, prefix: str) -> dict[str, Entry]:
        """name -> entry for the files of one folder."""
        out: dict[str, Entry] = {}
        raw = self.raw(prefix)
        if not raw:
            return out
        try:
            for name, ino, size, mtime, digest, chunks in codec.unpack_stream(raw):
                out[name] = (ino, size, mtime, digest, chunks)
        except (ValueError, TypeError, DecodeError):
            return {}
        return out

    def names(self, prefix: str) -> frozenset[str]:
        """The files of one folder that were in the workspace when this cache was written (any
        entry, presence entries included)."""
        return frozenset(self.entries(prefix))

    def had_under(self, prefix: str) -> bool:
        """Whether any file at or below the folder `prefix` ("" for the target) has an entry."""
        if self._had is None:
            self._had = set()
            for p, rec in self.folders.items():
                if rec.spans:
                    parts = p.split("/")[:-1]
                    self._had.update("".join(x + "/" for x in parts[:k]) for k in range(len(parts) + 1))
        return prefix in self._had

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StatCache:
    """A target's stat cache keyed by path, for single-file targets and a check-out's plan.
    Without load(), a folder's entries are read when one of its files is first looked up or
    recorded (memory follows the folders touched); load() reads them all."""

    def __init__(self, state_dir: Path, target_rel: str) -> None:
        self.path = state_dir / "stat" / xxhash.xxh3_64_hexdigest(target_rel.encode())
        self.entries: dict[str, Entry] = {}
        self.changed = False
        self._touched: set[str] = set()  # folders whose entries record() changed
        self._old: StatFile | None = None
        self._read: set[str] | None = set()  # folders read so far (None: all)

    def load(self) -> StatCache:
        old = self._file()
        for prefix in old.folders:
            self._folder(prefix)
        self._read = None
        return self

    def _file(self) -> StatFile:
        if self._old is None:
            self._old = StatFile(self.path)
        return self._old

    def _folder(self, prefix: str) -> None:
        if self._read is not None and prefix not in self._read:
            self._read.add(prefix)
            for name, entry in self._file().entries(prefix).items():
                self.entries.setdefault(prefix + name, entry)

    def lookup(self, rel: str, st: os.stat_result | tuple[int, ...]) -> tuple[bytes, bytes] | None:
        self._folder(split(rel)[0])
        e = self.entries.get(rel)
        if e is not None and (e[0], e[1], e[2]) == _key(st):
            return e[3], e[4]
        return None

    def record(self, rel: str, st: os.stat_result | tuple[int, ...], digest: bytes, chunks: bytes,
               started_ns: int, settled: bool = False) -> None:
        prefix = split(rel)[0]
        self._folder(prefix)
        ino, size, mtime_ns = _key(st)
        if not settled and mtime_ns >= started_ns - RACY_NS:
            new = (ino, PRESENT, mtime_ns, b"", b"")  # here, but too recent to trust
        else:
            new = (ino, size, mtime_ns, digest, chunks)
        if self.entries.get(rel) != new:
            self.entries[rel] = new
            self.changed = True
            self._touched.add(prefix)

    def forget(self, rel: str) -> None:
        """Drop a file's entry: a check-out removed it because the version it places lacks it
        (so it is neither a file of this workspace nor one the user deleted)."""
        prefix = split(rel)[0]
        self._folder(prefix)
        if self.entries.pop(rel, None) is not None:
            self.changed = True
            self._touched.add(prefix)

    def save(self) -> None:
        """Write the cache atomically. A folder none of whose entries changed keeps its block and
        its fingerprint record as they were (a fingerprint checks itself against the folder's
        listing, so it can only ever send status back to the file-by-file path), under the old
        file's removal token."""
        old = self._file()
        try:
            if not self.changed:
                return
            writer = StatCacheWriter(self, 0, old.removals)
            try:
                by_folder: dict[str, list[str]] = {}
                for rel in sorted(self.entries, key=split):
                    prefix = split(rel)[0]
                    if prefix in self._touched:
                        by_folder.setdefault(prefix, []).append(rel)
                for prefix, rec in old.folders.items():
                    if prefix not in self._touched:
                        writer.keep(prefix, old.raw(prefix), rec, stored=True)
                for rels in by_folder.values():
                    for rel in rels:
                        e = self.entries[rel]
                        writer.append(rel, (e[0], e[1], e[2]), e[3], e[4], settled=True)
            except BaseException:
                writer.abort()
                raise
            writer.commit()
        finally:
            old.close()
            self._old = None


def sweep_temps(state_dir: Path) -> None:
    """Remove the temp files of stat caches whose writer is gone (a command killed while it
    wrote one): `NAME.PID.RANDOM.tmp` with no process PID. Older names (no PID) are left alone."""
    try:
        names = os.listdir(state_dir / "stat")
    except OSError:
        return
    for name in names:
        parts = name.split(".")
        if len(parts) != 4 or parts[3] != "tmp" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # alive (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            os.unlink(state_dir / "stat" / name)


def ever_here(state_dir: Path, target_rel: str) -> bool:
    """Whether any of a target's files was ever in this workspace (its stat cache has an entry):
    a target that is gone now was deleted, one never here was never pulled."""
    f = StatFile(StatCache(state_dir, target_rel).path)
    try:
        return f.had_under("")
    finally:
        f.close()


def canonical(rel: str) -> list[str]:
    """The order of a tree walk (names compared folder by folder)."""
    return rel.split("/")


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
    """Streams a fresh stat cache to disk while a command walks a target, so it holds no per-file
    entries in memory (only the index: a record per folder); commit() replaces the old cache
    atomically. Entries may come in any order; each run of one folder's entries is a span."""

    def __init__(self, cache: StatCache, started_ns: int, removals: bytes = b"") -> None:
        """removals: the cache's removal token read before the command looked at any object."""
        self.path = self._final = cache.path
        self._removals = removals
        self._final.parent.mkdir(parents=True, exist_ok=True)
        # The writer's PID in the name: a temp file whose process is gone (killed) is swept
        # by the next command (sweep_temps), never one a live command is still writing.
        self._tmp = self._final.with_name(f"{self._final.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        self._f = open(self._tmp, "w+b")  # noqa: SIM115 - closed in commit/abort; read back by written()
        self._f.write(MAGIC)
        self._pos = len(MAGIC)
        self._started_ns = started_ns
        self._folders: dict[str, FolderRec] = {}
        self._open: str | None = None  # the folder whose span is being written
        self._span_at = 0

    def _to(self, prefix: str) -> None:
        if prefix != self._open:
            self._close_span()
            self._open, self._span_at = prefix, self._pos

    def _close_span(self) -> None:
        if self._open is not None and self._pos > self._span_at:
            self._folders.setdefault(self._open, FolderRec()).spans.append((self._span_at, self._pos - self._span_at))
        self._open = None

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def append(self, rel: str, key: tuple[int, int, int], digest: bytes, chunks: bytes,
               settled: bool = False) -> None:
        """key: (ino, size, mtime_ns) of the file as it was read (or, settled, as settle() left it).
        A racy file gets a presence entry: it was here, its stat is not trusted."""
        prefix, name = split(rel)
        self._to(prefix)
        if settled or key[2] < self._started_ns - RACY_NS:
            self._write(codec.packb([name, *key, digest, chunks]))
        else:
            self._write(codec.packb([name, key[0], PRESENT, key[2], b"", b""]))

    def seen(self, rel: str) -> None:
        """A tracked file that was in the workspace and is gone now: a presence entry keeps it a
        deletion (not "never here") until a new version records it gone or a check-out restores it."""
        prefix, name = split(rel)
        self._to(prefix)
        self._write(codec.packb([name, 0, PRESENT, 0, b"", b""]))

    def copy(self, prefix: str, raw: bytes) -> None:
        """A folder's entries as an old stat cache holds them (StatFile.raw), unchanged."""
        if raw:
            self._to(prefix)
            self._write(raw)

    def keep(self, prefix: str, raw: bytes, rec: FolderRec, stored: bool) -> None:
        """A folder that matched its record in the old cache: its entries and record, as they
        were (`stored` only if no object left the cache since the old one was written)."""
        self.copy(prefix, raw)
        spans = self._folders[prefix].spans if prefix in self._folders else []
        self._folders[prefix] = FolderRec(spans, rec.fingerprint, rec.tree, rec.size, rec.files, rec.subs,
                                          rec.stored and stored)

    def written(self, prefix: str) -> dict[str, Entry]:
        """The entries appended for one folder so far, read back (for checkout's fingerprints)."""
        self._close_span()
        self._f.flush()
        rec = self._folders.get(prefix)
        raw = b"".join(os.pread(self._f.fileno(), n, o) for o, n in rec.spans) if rec is not None else b""
        return {name: (ino, size, mtime, digest, chunks)
                for name, ino, size, mtime, digest, chunks in codec.unpack_stream(raw)}

    def summary(self, prefix: str, fp: bytes, newest_mtime: int, tree: bytes, size: int, files: int,
                subs: tuple[Sub, ...], stored: bool = False, settled: bool = False) -> None:
        """The folder's fingerprint: its files matched tree node `tree` (of `size` bytes and
        `files` files under it) when `fp` was taken. Left out if its newest file is racy, unless
        `settled`: every file's stat in the listing is the one settle() gave it (checkout)."""
        if settled or newest_mtime < self._started_ns - RACY_NS:
            rec = self._folders.setdefault(prefix, FolderRec())
            rec.fingerprint, rec.tree, rec.size, rec.files, rec.subs, rec.stored = fp, tree, size, files, subs, stored

    def commit(self) -> None:
        self._close_span()
        index = codec.packb([self._removals, [[p, r.spans, r.fingerprint, r.tree, r.size, r.files,
                                                [list(s) for s in r.subs], r.stored]
                                               for p, r in self._folders.items()]])
        at = self._pos
        self._write(index)
        self._write(FOOTER.pack(at, MAGIC))
        self._f.close()
        os.replace(self._tmp, self._final)

    def abort(self) -> None:
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

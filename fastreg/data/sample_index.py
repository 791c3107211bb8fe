"""The sample index of a training dataset: every file under one path of one registry commit, in
a stable order (sorted paths), with where its bytes are on the remote. Built from tree nodes and
the remote's index (no data read), cached on disk per revision, and memory-mapped by every worker
that reads it (the pages are shared, nothing is copied per process).

File layout: a msgpack header, then raw arrays the header sizes:

    ["fastreg.samples", 1, url, commit, path, remote, n, packs, folders, folder_class, classes,
     spans, chunks, names]
    samples  n x 52 bytes: digest 32 | folder u32 | name offset u32 | pack u32 | offset u32 | length u32
    order    n x 4: sample numbers sorted by (pack, offset): the order a pack is laid out in
    spans    s x 12: first position in `order` u32 | count u32 | end u32 (in its pack; 0: a span of
             one file of several chunks, or empty)
    chunks   c x 44: digest 32 | pack u32 | offset u32 | length u32 (files of several chunks)
    (digests and the pack list as 32-byte keys: objects/digest.py's `wide`, for either format)
    names    the file names, back to back (a name ends where the next sample's begins)

A sample of one chunk names its pack, offset and length; a file of several chunks has
pack = MULTI, offset = its first row in `chunks` and length = its number of chunks; an empty file
has pack = EMPTY. A span is a run of samples laid out close together in one pack (at most
SPAN_BYTES from the first byte to the last, gaps of at most GAP): what one sequential ranged GET
reads. About 56 bytes a sample plus its file name.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastreg.chunking import iter_chunks
from fastreg.errors import DecodeError, MissingDataError, PathError, UsageError
from fastreg.objects import codec
from fastreg.objects.digest import WIDTH, narrow, wide
from fastreg.objects.tree import FileRecord
from fastreg.plan import GAP, MAX_RANGE, joins

FORMAT = "fastreg.samples"
VERSION = 3
SAMPLE = struct.Struct(f"<{WIDTH}sIIIII")
ORDER = struct.Struct("<I")
SPAN = struct.Struct("<III")
CHUNK = struct.Struct(f"<{WIDTH}sIII")
MULTI = 0xFFFFFFFF
EMPTY = 0xFFFFFFFE
SPAN_BYTES = MAX_RANGE  # the largest span: one ranged GET
_U32 = "I" if array("I").itemsize == 4 else "L"  # the array type code of 4-byte unsigned ints


@dataclass(frozen=True, slots=True)
class Where:
    """Where a sample's bytes are: (pack digest, offset, length) of each chunk, in file order."""

    digest: bytes
    size: int
    chunks: tuple[tuple[bytes, bytes, int, int], ...]  # (chunk digest, pack digest, offset, length)


class SampleIndex:
    """A loaded (memory-mapped) sample index. Cheap to open; pickles as its path."""

    def __init__(self, path: Path) -> None:
        self.file = path
        with open(path, "rb") as f:
            try:
                header = codec.stream_unpacker(f)
                v = next(header)
                at = header.tell()
            except Exception as exc:  # msgpack's own types, StopIteration: a damaged index
                raise DecodeError(f"{path}: not a sample index ({exc})") from None
            if not (isinstance(v, list) and len(v) == 14 and v[0] == FORMAT and v[1] == VERSION):
                raise DecodeError(f"{path}: not a sample index of this version")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (_, _, self.url, self.commit, self.root, self.remote, self.n, packs, self.folders, folder_class,
         self.classes, nspans, nchunks, names_len) = v
        self.packs: list[bytes] = [narrow(bytes(p)) for p in _split(packs)]
        self.folder_class: list[int] = list(folder_class)
        self._samples = at
        self._order = self._samples + self.n * SAMPLE.size
        self._spans = self._order + self.n * ORDER.size
        self._chunks = self._spans + nspans * SPAN.size
        self._names = self._chunks + nchunks * CHUNK.size
        self.nspans: int = nspans
        self._names_len = int(names_len)
        self._span_of: array[int] | None = None
        if len(self._mm) != self._names + names_len:
            self._mm.close()
            raise DecodeError(f"{path}: a truncated sample index")

    def __len__(self) -> int:
        return int(self.n)

    def close(self) -> None:
        self._mm.close()

    # -- one sample --------------------------------------------------------------------------
    def row(self, i: int) -> tuple[bytes, int, int, int, int, int]:
        if not 0 <= i < self.n:
            raise IndexError(f"sample {i} of {self.n}")
        key, *rest = SAMPLE.unpack_from(self._mm, self._samples + i * SAMPLE.size)
        return (narrow(key), *rest)

    def name(self, i: int) -> str:
        start = SAMPLE.unpack_from(self._mm, self._samples + i * SAMPLE.size)[2]
        end = (SAMPLE.unpack_from(self._mm, self._samples + (i + 1) * SAMPLE.size)[2] if i + 1 < self.n
               else self._names_len)
        return self._mm[self._names + start : self._names + end].decode()

    def path(self, i: int) -> str:
        """The sample's path from the registry's root (what `fastreg get` takes)."""
        folder = self.folders[self.row(i)[1]]
        return "/".join(p for p in (self.root, folder, self.name(i)) if p)

    def label(self, i: int) -> int:
        """Its class index: the first folder level under the dataset's path (-1 for a file at
        the top)."""
        return self.folder_class[self.row(i)[1]]

    def where(self, i: int) -> Where:
        digest, _, _, pack, offset, length = self.row(i)
        if pack == EMPTY:
            return Where(digest, 0, ())
        if pack != MULTI:
            return Where(digest, length, ((digest, self.packs[pack], offset, length),))
        rows = [CHUNK.unpack_from(self._mm, self._chunks + (offset + k) * CHUNK.size) for k in range(length)]
        chunks = tuple((narrow(d), self.packs[p], o, n) for d, p, o, n in rows)
        return Where(digest, sum(c[3] for c in chunks), chunks)

    def size(self, i: int) -> int:
        _, _, _, pack, _, length = self.row(i)
        return 0 if pack == EMPTY else length if pack != MULTI else self.where(i).size

    # -- spans -------------------------------------------------------------------------------
    def span(self, s: int) -> tuple[int, int]:
        """(first position in the pack order, count) of span s."""
        return SPAN.unpack_from(self._mm, self._spans + s * SPAN.size)[:2]

    def extent(self, s: int) -> tuple[bytes, int, int] | None:
        """(pack digest, start, end) of the bytes span s reads; None for a span of one file of
        several chunks (or an empty one)."""
        first, _, end = SPAN.unpack_from(self._mm, self._spans + s * SPAN.size)
        pack, start = self.row(self.ordered(first))[3:5]
        if pack in (MULTI, EMPTY):
            return None
        return self.packs[pack], start, end

    def span_of(self, i: int) -> int:
        """The span sample i is read with (a sample of one chunk). The first call makes the
        table of every sample's span (4 bytes a sample, in this process)."""
        if self._span_of is None:
            self._span_of = self._spans_table()
        return self._span_of[i]

    def _spans_table(self) -> array[int]:
        order = array(_U32)
        order.frombytes(self._mm[self._order : self._order + self.n * ORDER.size])
        if sys.byteorder != "little":
            order.byteswap()
        table = array(_U32, bytes(self.n * 4))
        spans = SPAN.iter_unpack(self._mm[self._spans : self._spans + self.nspans * SPAN.size])
        for s, (first, count, _) in enumerate(spans):
            for pos in range(first, first + count):
                table[order[pos]] = s
        return table

    def ordered(self, pos: int) -> int:
        """The sample at position pos of the pack order."""
        return int(ORDER.unpack_from(self._mm, self._order + pos * ORDER.size)[0])

    def span_counts(self) -> list[int]:
        return [c for _, c, _ in SPAN.iter_unpack(self._mm[self._spans : self._spans + self.nspans * SPAN.size])]


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + WIDTH] for i in range(0, len(blob), WIDTH)]


def index_key(url: str, commit: str, path: str, remote: str) -> str:
    return hashlib.sha256("\0".join((url, commit, path, remote)).encode()).hexdigest()[:32]


def build(out: Path, url: str, commit: str, root: str, remote: str, files: list[tuple[str, FileRecord]],
          where: dict[bytes, Any]) -> None:
    """Write the index of files (path under root, record; any order) to out, atomically.
    `where`: chunk digest -> Location (pack, offset, length) for every chunk of every file."""
    if not files:
        raise PathError(f"{root}: no files to train on in {url} at {commit[:10]}")
    files = sorted(files, key=lambda f: f[0])
    folders: dict[str, int] = {}
    classes = sorted({rel.split("/", 1)[0] for rel, _ in files if "/" in rel})
    class_no = {c: i for i, c in enumerate(classes)}
    packs: dict[bytes, int] = {}
    samples = bytearray()
    names = bytearray()
    chunks = bytearray()
    laid: list[tuple[int, int, int, int]] = []  # (pack, offset, length, sample) of one-chunk samples
    odd: list[int] = []  # samples of several chunks, or empty
    for i, (rel, rec) in enumerate(files):
        folder, _, name = rel.rpartition("/")
        f = folders.setdefault(folder, len(folders))
        name_at = len(names)
        names += name.encode()
        if rec.size == 0:
            samples += SAMPLE.pack(wide(rec.digest), f, name_at, EMPTY, 0, 0)
            odd.append(i)
            continue
        parts = iter_chunks(rec.chunks, rec.digest, rec.size)
        locs = []
        for d, n in parts:
            loc = where.get(d)
            if loc is None:
                raise MissingDataError(f"{root}/{rel}: its data is not on the registry's remote (chunk {d.hex()}); "
                                       "was it pushed?")
            locs.append((d, packs.setdefault(loc.pack, len(packs)), loc.offset, n))
        if len(locs) == 1:
            _, p, o, n = locs[0]
            samples += SAMPLE.pack(wide(rec.digest), f, name_at, p, o, n)
            laid.append((p, o, n, i))
        else:
            samples += SAMPLE.pack(wide(rec.digest), f, name_at, MULTI, len(chunks) // CHUNK.size, len(locs))
            for d, p, o, n in locs:
                chunks += CHUNK.pack(wide(d), p, o, n)
            odd.append(i)
    if len(names) >= 1 << 32 or len(files) >= EMPTY:
        raise UsageError(f"{root}: too many files for one sample index")
    laid.sort()
    order = bytearray()
    spans = bytearray()
    first = 0
    start = end = pack = -1
    for pos, (p, o, n, i) in enumerate(laid):
        if pos > first and not joins(pack, start, end, p, o, n, GAP, SPAN_BYTES):
            spans += SPAN.pack(first, pos - first, end)
            first = pos
        if pos == first:
            pack, start, end = p, o, 0
        end = max(end, o + n)
        order += ORDER.pack(i)
    if laid:
        spans += SPAN.pack(first, len(laid) - first, end)
    for k, i in enumerate(odd):
        order += ORDER.pack(i)
        spans += SPAN.pack(len(laid) + k, 1, 0)
    folder_list = sorted(folders, key=folders.__getitem__)
    folder_class = [class_no[fo.split("/", 1)[0]] if fo else -1 for fo in folder_list]
    pack_list = b"".join(wide(p) for p, _ in sorted(packs.items(), key=lambda kv: kv[1]))
    header = codec.packb([FORMAT, VERSION, url, commit, root, remote, len(files), pack_list, folder_list,
                          folder_class, classes,
                          len(spans) // SPAN.size, len(chunks) // CHUNK.size, len(names)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            for part in (header, samples, order, spans, chunks, names):
                fh.write(part)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

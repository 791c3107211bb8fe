"""The bytes of remote objects: pack files, index segments, file records, root hints and
project snapshots (where each lives on a remote: transfer/layout.py).

Index segment: ["fastreg.index", VERSION, pack_digest, pack_size, entries], entries a blob of
records sorted by chunk key: key + offset(uint32 BE) + length(uint32 BE). Version 2 (written now):
32-byte keys (digest.wide: a format-2 chunk's SHA-256, or a format-1 chunk's XXH3-128 and 16 zero
bytes, so one pack may hold both), 40-byte records, the pack named by SHA-256. Version 1 (read):
16-byte XXH3-128 digests, 24-byte records. Packs stay under 4 GiB (they are tens of MiB).  Memory
budget of the client's merged index: 44 bytes per chunk (a version-2 record plus a 4-byte pack
number).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fastreg.errors import DecodeError
from fastreg.objects import codec
from fastreg.objects.digest import FORMATS, WIDTH, name_matches, narrow, wide

PACK_HEADER = b"FRPK\x01\x00\x00\x00"
INDEX_MAGIC = "fastreg.index"
RECORD_MAGIC = "fastreg.record"
ROOTS_MAGIC = "fastreg.roots"
SNAPSHOT_MAGIC = "fastreg.snapshot"
ENTRY_1 = struct.Struct(">16sII")
ENTRY = struct.Struct(f">{WIDTH}sII")  # version 2: what is written
SEGMENT_VERSION = 2
_ENTRY_OF = {1: ENTRY_1, 2: ENTRY}


@dataclass(frozen=True, slots=True)
class IndexSegment:
    pack: bytes
    pack_size: int
    entries: bytes  # sorted records of the segment's version
    version: int = SEGMENT_VERSION

    def encode(self) -> bytes:
        return codec.packb([INDEX_MAGIC, self.version, self.pack, self.pack_size, self.entries])

    @property
    def entry(self) -> struct.Struct:
        return _ENTRY_OF[self.version]

    def __len__(self) -> int:
        return len(self.entries) // self.entry.size

    def items(self) -> list[tuple[bytes, int, int]]:
        """(chunk digest, offset, length) of every chunk, each digest in its own format."""
        if self.version == 1:
            return list(ENTRY_1.iter_unpack(self.entries))
        return [(narrow(k), off, ln) for k, off, ln in ENTRY.iter_unpack(self.entries)]


def make_segment(pack: bytes, pack_size: int, chunks: list[tuple[bytes, int, int]]) -> IndexSegment:
    """chunks: (digest, offset, length) in any order, digests of either format."""
    return IndexSegment(pack, pack_size, b"".join(sorted(ENTRY.pack(wide(d), off, ln) for d, off, ln in chunks)))


def decode_segment(data: bytes, name: str) -> IndexSegment:
    try:
        v = codec.unpackb(data)
        if not (isinstance(v, list) and len(v) == 5 and v[0] == INDEX_MAGIC):
            raise DecodeError("not an index segment")
        if v[1] not in _ENTRY_OF:
            raise DecodeError(f"index segment version {v[1]!r} is newer than this fastreg; upgrade it")
        version, pack, size, entries = v[1], v[2], v[3], v[4]
        if not (isinstance(pack, bytes) and len(pack) in FORMATS and isinstance(size, int)
                and isinstance(entries, bytes) and len(entries) % _ENTRY_OF[version].size == 0
                and (version == 2 or len(pack) == 16)):
            raise DecodeError("malformed index segment")
    except DecodeError as exc:
        raise DecodeError(f"index segment {name} is corrupt: {exc}") from None
    if not name_matches(data, name):
        raise DecodeError(f"index segment {name} does not match its name (corrupt or truncated)")
    return IndexSegment(pack, size, entries, version)


def encode_record(size: int, chunks: bytes) -> bytes:
    return codec.packb([RECORD_MAGIC, 1, size, chunks])


def decode_record(data: bytes, where: str) -> tuple[int, bytes]:
    v = codec.unpackb(data)
    if not (isinstance(v, list) and len(v) == 4 and v[0] == RECORD_MAGIC and v[1] == 1
            and isinstance(v[2], int) and isinstance(v[3], bytes)):
        raise DecodeError(f"{where}: not a fastreg file record")
    return v[2], v[3]


def encode_roots(segments: list[str]) -> bytes:
    return codec.packb([ROOTS_MAGIC, 1, sorted(segments)])


def decode_roots(data: bytes, where: str) -> list[str]:
    v = codec.unpackb(data)
    if not (isinstance(v, list) and len(v) == 3 and v[0] == ROOTS_MAGIC and isinstance(v[2], list)):
        raise DecodeError(f"{where}: not a fastreg root hint")
    return [str(s) for s in v[2]]


@dataclass(frozen=True, slots=True)
class Root:
    """One target a project refers to: a tree ("dir") or a single file ("file")."""

    kind: str
    digest: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one project refers to at the time of a push (workspace and Git history).

    Encoding: ["fastreg.snapshot", 1, project, time_ns, where, [[kind, digest, size], ...]]
    with roots sorted (kind, digest), so the same roots give the same bytes."""

    project: str  # hex id of one clone of a project (see Project.project_id)
    time_ns: int
    where: str  # host:path of the clone, for people choosing what to retire
    roots: tuple[Root, ...]

    def encode(self) -> bytes:
        roots = sorted({(r.kind, r.digest, r.size) for r in self.roots})
        return codec.packb([SNAPSHOT_MAGIC, 1, self.project, self.time_ns, self.where, [list(r) for r in roots]])


def decode_snapshot(data: bytes, where: str) -> Snapshot:
    try:
        v = codec.unpackb(data)
        if not (isinstance(v, list) and len(v) == 6 and v[0] == SNAPSHOT_MAGIC):
            raise DecodeError("not a snapshot")
        if v[1] != 1:
            raise DecodeError(f"snapshot version {v[1]!r} is newer than this fastreg; upgrade it")
        roots = tuple(Root(str(k), bytes(d), int(n)) for k, d, n in v[5])
        if any(r.kind not in ("dir", "file") or len(r.digest) not in FORMATS for r in roots):
            raise DecodeError("malformed root")
        return Snapshot(str(v[2]), int(v[3]), str(v[4]), roots)
    except (DecodeError, TypeError, ValueError) as exc:
        raise DecodeError(f"{where} is corrupt: {exc}") from None

"""Building blocks of the transfer stage tests: objects in a real local cache and packs on an
in-memory store, made by hand."""

from __future__ import annotations

from fastreg.chunking import CHUNK_ENTRY_2, list_digest
from fastreg.objects import pack as packfmt
from fastreg.objects.digest import digest_bytes, digest_of
from fastreg.objects.tree import FileRecord
from fastreg.repo.cache import Cache
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import layout
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer.index import RemoteIndex


def h(data: bytes) -> bytes:
    """A stored object's name (format 2), so a file of one chunk's digest."""
    return digest_of(data)


def put_file(cache: Cache, data: bytes) -> bytes:
    tmp = cache.tmp_path()
    tmp.write_bytes(data)
    cache.adopt(tmp, h(data))
    return h(data)


async def put_pack(store: MemoryStore, mirror: RemoteIndex | None, chunks: list[bytes]) -> bytes:
    """A pack of `chunks` and its segment on the store (merged into `mirror` if given)."""
    body = bytearray(packfmt.PACK_HEADER)
    entries = []
    for c in chunks:
        entries.append((h(c), len(body), len(c)))
        body += c
    digest = digest_bytes(bytes(body))
    seg = packfmt.make_segment(digest, len(body), entries)
    name = digest_bytes(seg.encode()).hex()
    await store.put(layout.pack_key(digest), bytes(body))
    await store.put(layout.index_key(name), seg.encode())
    if mirror is not None:
        mirror.merge([(name, seg)])
    return digest


def whole(data: bytes) -> FileRecord:
    return FileRecord(len(data), h(data), b"")


def chunked(parts: list[bytes]) -> FileRecord:
    """A file of these chunks (format 2: named by its chunk list)."""
    data = b"".join(parts)
    entries = b"".join(CHUNK_ENTRY_2.pack(h(p), len(p)) for p in parts)
    return FileRecord(len(data), list_digest(entries), entries)


def leftovers(cache: Cache) -> list[str]:
    return [p.name for p in cache.tmp_path().parent.iterdir()]

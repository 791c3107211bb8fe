"""Tree nodes and file records on a remote: read, verified against their digest, and kept in the
local cache. What fetching data needs first, and what a push planning reads of the remote."""

from __future__ import annotations

import asyncio

from fastreg.errors import DecodeError, IntegrityError, MissingDataError, ObjectNotFound
from fastreg.objects import pack, tree
from fastreg.objects.digest import matches
from fastreg.objects.tree import FileRecord
from fastreg.storage.base import Store
from fastreg.transfer import layout
from fastreg.transfer.local_objects import LocalObjects


async def fetch_trees(store: Store, cache: LocalObjects, roots: list[bytes]) -> int:
    """Bring every tree node under roots into the local cache (verified); returns how many
    nodes were downloaded. Nodes already cached are trusted and walked locally."""
    fetched = 0
    level = list(dict.fromkeys(roots))
    seen: set[bytes] = set()
    while level:
        async def one(digest: bytes) -> list[bytes]:
            nonlocal fetched
            cached = await asyncio.to_thread(cache.tree_path(digest).exists)
            data = await fetch_node(store, cache, digest)
            fetched += not cached
            try:
                return tree.child_nodes(data, digest)
            except DecodeError as exc:
                raise IntegrityError(f"{store.where(layout.tree_key(digest))}: {exc}") from None

        seen.update(level)
        children = await asyncio.gather(*(one(d) for d in level))
        level = [c for cs in children for c in cs if c not in seen]
        level = list(dict.fromkeys(level))
    return fetched


async def fetch_node(store: Store, cache: LocalObjects, digest: bytes) -> bytes:
    """One tree node, from the local cache or the remote (verified, then cached)."""
    if await asyncio.to_thread(cache.tree_path(digest).exists):
        return await asyncio.to_thread(cache.get_tree, digest)
    key = layout.tree_key(digest)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        raise MissingDataError(f"{store.where(key)} is missing: the data was not pushed to {store.url} "
                           "(run `fastreg push` where it was added)") from None
    if not matches(data, digest):
        raise IntegrityError(f"{store.where(key)} is corrupt (content does not match its digest)")
    await asyncio.to_thread(cache.put_tree, data, len(digest))
    return data


async def fetch_record(store: Store, digest: bytes, size: int) -> FileRecord:
    """The chunk list of a single-file target (files up to the whole-file limit have none)."""
    key = layout.record_key(digest)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        return FileRecord(size, digest, b"")
    try:
        rsize, chunks = pack.decode_record(data, store.where(key))
    except DecodeError as exc:
        raise IntegrityError(str(exc)) from None
    if rsize != size:
        raise IntegrityError(f"{store.where(key)} describes {rsize} bytes, the metafile {size}")
    return FileRecord(size, digest, chunks)

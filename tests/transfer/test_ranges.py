"""transfer/ranges.py: chunks out of packs, planned, read and verified in one place."""

from __future__ import annotations

import os

import pytest

from fastreg.errors import IntegrityError
from fastreg.objects import pack as packfmt
from fastreg.plan import Location
from fastreg.storage.memory import MemoryStore
from fastreg.transfer import layout
from fastreg.transfer.ranges import PackReader, read_located
from tests.transfer.stages import h, put_pack


async def _pack(store: MemoryStore, chunks: list[bytes]) -> tuple[bytes, list[tuple[bytes, Location]]]:
    digest = await put_pack(store, None, chunks)
    at = len(packfmt.PACK_HEADER)
    located = []
    for c in chunks:
        located.append((h(c), Location(digest, at, len(c))))
        at += len(c)
    return digest, located


async def test_neighbours_come_in_one_ranged_read_each_verified() -> None:
    store = MemoryStore()
    chunks = [os.urandom(1000) for _ in range(5)]
    _, located = await _pack(store, chunks)
    gets = 0
    original = store.get

    async def counting(key: str, start: int | None = None, end: int | None = None) -> bytes:
        nonlocal gets
        gets += 1
        return await original(key, start, end)

    store.get = counting  # type: ignore[method-assign]
    got = await read_located(store, [located[0], located[2], located[4]], jobs=4, max_request=1 << 20)
    assert got == {h(c): c for c in (chunks[0], chunks[2], chunks[4])} and gets == 1


async def test_damage_is_named_by_pack_and_chunk() -> None:
    store = MemoryStore()
    chunks = [os.urandom(1000) for _ in range(3)]
    digest, located = await _pack(store, chunks)
    body = bytearray(await store.get(layout.pack_key(digest)))
    body[located[1][1].offset + 10] ^= 0xFF  # one flipped bit in the second chunk
    await store.put(layout.pack_key(digest), bytes(body))
    with pytest.raises(IntegrityError, match=f"is corrupt at chunk {h(chunks[1]).hex()}"):
        await read_located(store, located, jobs=2, max_request=1 << 20)
    await store.put(layout.pack_key(digest), bytes(body[: located[2][1].offset]))  # cut short
    with pytest.raises(IntegrityError, match="is truncated at chunk"):
        await read_located(store, located, jobs=2, max_request=1 << 20)


def test_a_pack_reader_reads_verified_chunks_from_plain_threads() -> None:
    import asyncio

    store = MemoryStore()
    chunks = [os.urandom(500) for _ in range(4)]
    _, located = asyncio.run(_pack(store, chunks))
    reader = PackReader(store, jobs=2)
    try:
        assert reader.read_chunks(located, 1 << 20) == {h(c): c for c in chunks}
    finally:
        reader.close()
    with pytest.raises(RuntimeError, match="until closed"):
        reader.read_chunks(located, 1 << 20)

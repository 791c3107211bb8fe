"""The sample cache's reads of parts of an entry, as two processes sharing one cache see them
(two SampleCache objects: each keeps its own open entries, as each process does)."""

from __future__ import annotations

import os
from pathlib import Path

from fastreg.data.sample_cache import SampleCache, extent_key


def test_an_entry_another_process_removed_is_never_read_from_the_file_held_open(tmp_path: Path) -> None:
    mine, theirs = SampleCache(tmp_path, None), SampleCache(tmp_path, None)
    key = extent_key(b"p" * 16, 0, 4096)
    old, new = os.urandom(4096), os.urandom(4096)
    mine.put_now(key, old)
    assert mine.read_range(key, 100, 50) == old[100:150]  # now held open by this process
    theirs.drop(key)
    assert mine.read_range(key, 100, 50) is None  # gone: the open file is let go, not read
    theirs.put_now(key, new)  # the span kept again, by the other process
    assert mine.read_range(key, 100, 50) == new[100:150]
    assert mine.read_range(key, 4000, 200) is None  # past the end: not a sample


def test_eviction_lets_go_of_the_entries_it_removes(tmp_path: Path) -> None:
    cache = SampleCache(tmp_path, 10_000)
    keys = [extent_key(bytes([k]) * 16, 0, 3000) for k in range(4)]
    for k in keys[:2]:
        cache.put_now(k, os.urandom(3000))
        assert cache.read_range(k, 0, 10) is not None
    for k in keys[2:]:
        cache.put_now(k, os.urandom(3000))  # evicts the oldest down to 80% of the limit
    assert cache.usage() <= 10_000
    held = {k for k in keys if cache._open is not None and k in cache._open.open}
    on_disk = {k for k in keys if cache.read(k) is not None}
    assert held <= on_disk and len(on_disk) < len(keys)

"""Fixtures of the transfer stage tests: a real local cache and an index mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastreg.repo.cache import Cache
from fastreg.transfer import remote_gc as remote_gc
from fastreg.transfer.index import RemoteIndex


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    c = Cache(tmp_path / "cache", ("copy",))
    c.ensure()
    return c


@pytest.fixture
def mirror(tmp_path: Path) -> RemoteIndex:
    return RemoteIndex(tmp_path / "mirror", "memory://")

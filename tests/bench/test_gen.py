"""bench/gen.py's pictures: the demo's images decode (so `fastreg ui` shows them), keep the sizes
and the incompressibility the benchmarks rely on, and are the same on every run."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

from bench.gen import image_sizes, images
from tests.helpers import files_under


def test_pictures_decode_at_their_sizes_and_do_not_compress(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    images(tmp_path / "a", train=8, validation=4, start=1, seed=3, mean_kb=20, pictures=True)
    images(tmp_path / "b", train=8, validation=4, start=1, seed=3, mean_kb=20, pictures=True)
    a = files_under(tmp_path / "a")
    assert a == files_under(tmp_path / "b") and len(a) == 12  # seeded: the same bytes every run
    want = image_sizes(random.Random("3/train/cat/1"), 4, 20)
    got = [len(a[f"data/train/cats/cat.{i:04d}.jpg"]) for i in range(1, 5)]
    # each its lognormal size (a segment has 4 bytes at least: up to 3 short), or its bare picture's
    pairs = list(zip(want, got, strict=True))
    assert all(g >= w - 3 for w, g in pairs) and any(g == w for w, g in pairs)
    for name, body in a.items():
        with Image.open(tmp_path / "a" / name) as im:
            im.load()  # decodes past the padding segments
            assert im.format == "JPEG" and im.size == (192, 144)
        assert len(zlib.compress(body)) > 0.95 * len(body)

"""A demo registry of real images for the `fastreg ui` tests, built once per module with the real
CLI on a local-directory remote: v1 (cats and dogs), v2 (+6 images, one modified, one deleted, a
file named like HTML, a text file), and a 100-megapixel PNG only on a branch."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import git

HOSTILE = "<img src=x onerror=alert(1)>.jpg"


@dataclass
class Demo:
    root: Path
    remote: Path
    v1_images: list[str]  # paths from the registry's root
    v1_sizes: dict[str, int]
    added: list[str]  # images v2 added
    modified: str
    deleted: str


def fastreg(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "fastreg", *args], cwd=root, check=True, capture_output=True)


def _face(seed: int, size: tuple[int, int]) -> Any:
    """A coloured background with a face-like disc (something a person can tell apart)."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    img = Image.new("RGB", size, tuple(rnd.randrange(60, 256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    w, h = size
    r = min(w, h) // 3
    cx, cy = w // 2 + rnd.randrange(-w // 8, w // 8 + 1), h // 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(rnd.randrange(0, 120) for _ in range(3)))
    for ex in (cx - r // 2, cx + r // 2):
        draw.ellipse((ex - 1, cy - r // 3 - 1, ex + 1, cy - r // 3 + 1), fill=(255, 255, 255))
    return img


def png(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    _face(seed, size).save(buf, "PNG")
    return buf.getvalue()


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    _face(seed, (40, 30)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build(root: Path) -> Demo:
    remote = root.parent / "remote"
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    fastreg(root, "init")
    fastreg(root, "remote", "add", "-d", "store", str(remote))
    pets = root / "pets"
    v1 = []
    for cls, n in (("cats", 8), ("dogs", 6)):
        (pets / cls).mkdir(parents=True)
        for i in range(n):
            (pets / cls / f"{cls}.{i:02d}.png").write_bytes(png(hash((cls, i)) & 0xFFFF))
            v1.append(f"pets/{cls}/{cls}.{i:02d}.png")
    sizes = {p: (root / p).stat().st_size for p in v1}
    (root / "README.md").write_text("# demo registry\n")
    fastreg(root, "add", "pets")
    fastreg(root, "push")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pets v1")
    git(root, "tag", "v1")
    added = [f"pets/cats/new.{i}.jpg" for i in range(5)] + [f"pets/dogs/{HOSTILE}"]
    for i, p in enumerate(added):
        (root / p).write_bytes(jpeg(100 + i))
    modified, deleted = "pets/cats/cats.00.png", "pets/dogs/dogs.05.png"
    (root / modified).write_bytes(png(999, (64, 64)))
    (root / deleted).unlink()
    (pets / "notes.txt").write_text("".join(f"line {i}: <b>not bold</b>\n" for i in range(100)))
    fastreg(root, "add", "pets")
    fastreg(root, "push")
    git(root, "commit", "-qam", "pets v2")
    git(root, "tag", "v2")
    git(root, "checkout", "-qb", "huge")
    (pets / "huge").mkdir()
    big = _big_png()
    (pets / "huge" / "100mp.png").write_bytes(big)
    fastreg(root, "add", "pets")
    fastreg(root, "push")
    git(root, "commit", "-qam", "a 100-megapixel image")
    (pets / "huge" / "100mp.png").unlink()
    (pets / "huge").rmdir()
    git(root, "checkout", "-q", "main")
    return Demo(root, remote, v1, sizes, added, modified, deleted)


def _big_png() -> bytes:
    """A 10000x10000 PNG (100 megapixels) of one colour: small to store, huge to decode."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (10000, 10000), 128).save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build(tmp_path_factory.mktemp("ui") / "registry")


# A DVC 3 registry (built by real DVC) for the DVC view: the fixtures of tests/registry.
from tests.registry.conftest import built3, dvc3, reg3  # noqa: E402, F401

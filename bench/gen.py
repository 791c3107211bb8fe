"""Seeded dataset generator for the demo, the tests and the benchmarks.

python bench/gen.py images OUT [--train N] [--validation N] [--start K] [--seed S] [--mean-kb 100] [--pictures]
    an image-like tree OUT/data/{train,validation}/{cats,dogs}/{cat,dog}.NNNN.jpg with lognormal
    sizes around --mean-kb and incompressible content; --start K numbers files from K, so a second
    run with another --start grows the dataset (v2) without touching existing files. With
    --pictures (needs Pillow) every file is a JPEG that decodes (a small seeded picture, padded to
    its size with APP15 segments of random bytes), for looking at the data in `fastreg ui`
python bench/gen.py large FILE --size 512M [--seed S]        one large incompressible file
python bench/gen.py edit FILE --offset 256M --length 1M [--seed S]   overwrite a range in place
"""

from __future__ import annotations

import argparse
import io
import math
import random
import sys
from pathlib import Path

_JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def randbytes(seed: object, n: int) -> bytes:
    """Seeded incompressible bytes of any length (random.randbytes alone stops at 256 MiB)."""
    rnd = random.Random(str(seed))
    return b"".join(rnd.randbytes(min(16 << 20, n - i)) for i in range(0, n, 16 << 20))


def image_sizes(rnd: random.Random, n: int, mean_kb: float) -> list[int]:
    sigma = 0.5
    mu = math.log(mean_kb * 1024) - sigma * sigma / 2
    return [max(len(_JPEG_HEAD) + 16, int(rnd.lognormvariate(mu, sigma))) for _ in range(n)]


#: A picture's colours: cats warm, dogs cool.
_PALETTE = {"cat": ((236, 170, 92), (180, 90, 40)), "dog": ((120, 170, 230), (40, 70, 150))}


def picture(rnd: random.Random, animal: str, number: int, size: int) -> bytes:
    """A 192x144 JPEG of seeded shapes labelled with its name, padded to `size` bytes (at least its
    own) with APP15 segments of random bytes, which decoders skip: still incompressible."""
    from PIL import Image, ImageDraw

    light, dark = _PALETTE[animal]
    img = Image.new("RGB", (192, 144), light)
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y, r = rnd.randrange(192), rnd.randrange(144), rnd.randrange(12, 48)
        tone = tuple(max(0, min(255, c + rnd.randrange(-50, 50))) for c in dark)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tone)
    draw.rectangle((0, 118, 192, 144), fill=(20, 20, 20))
    draw.text((8, 124), f"{animal}.{number:04d}", fill=(255, 255, 255))
    # Grain, as a photo has: its JPEG does not compress further either.
    grain = Image.frombytes("L", img.size, rnd.randbytes(192 * 144)).convert("RGB")
    img = Image.blend(img, grain, 0.12)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    jpeg = buf.getvalue()
    segments = []
    pad = size - len(jpeg)
    while pad >= 4:  # a segment: marker (2), length (2, counting itself), payload
        payload = min(pad - 4, 65533)
        segments.append(b"\xff\xef" + (payload + 2).to_bytes(2, "big") + rnd.randbytes(payload))
        pad -= payload + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def images(out: Path, train: int, validation: int, start: int, seed: int, mean_kb: float,
           pictures: bool = False) -> int:
    """Write train/2 cats + train/2 dogs and validation/2 of each; returns bytes written."""
    total = 0
    for split, count in (("train", train), ("validation", validation)):
        for animal in ("cat", "dog"):
            d = out / "data" / split / f"{animal}s"
            d.mkdir(parents=True, exist_ok=True)
            n = count // 2
            # One generator per (split, animal, start): growing never rewrites existing files.
            rnd = random.Random(f"{seed}/{split}/{animal}/{start}")
            for i, size in enumerate(image_sizes(rnd, n, mean_kb)):
                if pictures:
                    body = picture(rnd, animal, start + i, size)
                else:
                    body = _JPEG_HEAD + rnd.randbytes(size - len(_JPEG_HEAD) - 2) + b"\xff\xd9"
                (d / f"{animal}.{start + i:04d}.jpg").write_bytes(body)
                total += len(body)
    return total


def large(path: Path, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(rnd.randbytes(n))
            left -= n


def edit(path: Path, offset: int, length: int, seed: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(random.Random(seed).randbytes(length))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("images")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--validation", type=int, default=800)
    p.add_argument("--start", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mean-kb", type=float, default=100.0)
    p.add_argument("--pictures", action="store_true", help="JPEGs that decode (needs Pillow)")
    p = sub.add_parser("large")
    p.add_argument("path", type=Path)
    p.add_argument("--size", type=parse_size, required=True)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("edit")
    p.add_argument("path", type=Path)
    p.add_argument("--offset", type=parse_size, required=True)
    p.add_argument("--length", type=parse_size, required=True)
    p.add_argument("--seed", type=int, default=2)
    a = ap.parse_args(argv)
    if a.mode == "images":
        if a.pictures:
            try:
                import PIL  # noqa: F401
            except ImportError:
                print("error: --pictures needs Pillow (pip install pillow)", file=sys.stderr)
                return 1
        n = images(a.out, a.train, a.validation, a.start, a.seed, a.mean_kb, a.pictures)
        print(
            f"wrote {a.train + a.validation} images, {n / 1e6:.1f} MB under {a.out / 'data'}", file=sys.stderr
        )
    elif a.mode == "large":
        large(a.path, a.size, a.seed)
    else:
        edit(a.path, a.offset, a.length, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Thumbnails for `fastreg ui`, made with Pillow (the optional extra `fastreg[ui]`): JPEGs of at
most SIZE pixels a side, with bounded memory (a JPEG is decoded at a reduced scale first; an image
that would still decode to more than MAX_PIXELS is refused), kept on disk by the content digest
of the image (the user cache's thumbs/), written to a temp name and renamed."""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from fastreg import tmpnames, userdirs
from fastreg.errors import UsageError

SIZE = 256
MAX_PIXELS = 50_000_000  # pixels decoded at most to make one thumbnail (~150 MB as RGB)
HINT = "image previews need Pillow: pip install 'fastreg[ui]'"


class NoPreview(UsageError):
    """This image gets no thumbnail (Pillow missing, not an image it reads, too many pixels)."""


def available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise NoPreview(HINT) from None
    return Image


def _path(digest: str) -> Path:
    return userdirs.thumbs() / digest[:2] / f"{digest}.jpg"


def kept(digest: str) -> bytes | None:
    try:
        return _path(digest).read_bytes()
    except OSError:
        return None


def _opened(image: Any, f: io.RawIOBase | io.BytesIO) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", image.DecompressionBombWarning)  # sized below, before decoding
        try:
            return image.open(f)
        except image.DecompressionBombError:
            raise NoPreview("more pixels than a preview decodes") from None
        except (OSError, SyntaxError, ValueError):  # UnidentifiedImageError among them
            raise NoPreview("not an image Pillow reads") from None


def make(data: bytes, digest: str | None) -> bytes:
    """The thumbnail of an image's bytes (kept under digest, when given)."""
    image = _pil()
    img = _opened(image, io.BytesIO(data))
    with img:
        img.draft("RGB", (SIZE, SIZE))  # a JPEG decodes at 1/2 to 1/8 scale
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise NoPreview(f"{w}x{h} pixels: too many to decode for a preview")
        try:
            img.thumbnail((SIZE, SIZE))
            small = img.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise NoPreview(f"a damaged image ({exc})") from None
    out = io.BytesIO()
    small.save(out, "JPEG", quality=82)
    jpeg = out.getvalue()
    if digest:
        _keep(digest, jpeg)
    return jpeg


def _keep(digest: str, jpeg: bytes) -> None:
    path = _path(digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmpnames.beside(path, f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written: the thumbnail is made again next time


def info(f: io.RawIOBase) -> dict[str, Any] | None:
    """An image's format and dimensions, from its header (None without Pillow or when Pillow
    cannot read it)."""
    try:
        image = _pil()
        img = _opened(image, f)
    except NoPreview:
        return None
    with img:
        return {"format": img.format, "width": img.size[0], "height": img.size[1], "mode": img.mode}

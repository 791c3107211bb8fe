"""What commands print: progress bars on stderr, sizes, counts with their plural, and the
allocator setting of commands that move data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastreg.repo.checkout import CheckoutResult


class Bar:
    """tqdm bar: phase as the description, bytes with rate and ETA (when the total is known),
    files done as the postfix."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                        leave=False, dynamic_ncols=True)
        self.files = 0

    def __call__(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bar.set_postfix_str(f"{self.files} files", refresh=False)
        self.bar.update(nbytes)

    def phase(self, name: str, total_bytes: int | None = None) -> None:
        self.bar.reset(total=total_bytes)
        self.files = 0
        self.bar.set_description_str(name)  # set_description adds ": ", which tqdm adds again when there is no total


@contextmanager
def progress_bar(args: argparse.Namespace, desc: str) -> Iterator[Bar | None]:
    """A progress bar on stderr when it is a terminal and -q is off."""
    if args.quiet or not sys.stderr.isatty():
        yield None
        return
    bar = Bar(desc)
    try:
        yield bar
    finally:
        bar.bar.close()


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def human(n: float | None) -> str:
    if n is None:
        return "-"  # a size the registry does not record
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def count(n: int, noun: str) -> str:
    """'1 file', '2 files'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def diff_summary(summary: dict[str, dict[str, int | None]]) -> str:
    """The last line `fastreg diff` prints: "2 files added (1.2 MB), 0 deleted, ..."."""
    from fastreg.repo.diff import KINDS

    def part(k: str) -> str:
        files, nbytes = summary[k]["files"] or 0, summary[k]["bytes"]
        if not files:
            return f"0 {k}"
        return f"{count(files, 'file')} {k}" + (f" ({human(nbytes)})" if nbytes is not None else "")

    return ", ".join(part(k) for k in KINDS)


def checked_out(res: CheckoutResult) -> str:
    return f"{count(res.placed, 'file')} restored, {res.removed} removed, {res.unchanged} unchanged"


def steady_malloc() -> None:
    """Keep large buffers out of glibc's heaps. After a big buffer is freed glibc raises its mmap
    threshold (up to 32 MiB), so from then on the 4-16 MiB packs and responses that push and pull
    move are carved from per-thread heaps that rarely shrink: peak RSS then grows with the bytes
    moved instead of what is held at once. Pinning the threshold keeps them mmapped and returned
    on free (a 100k-file fetch peaks at 51 MB instead of 75 MB). At 1 MiB, not lower: asyncio's
    256 KiB socket reads must stay on the heap (at 128 KiB each read is a fresh mmap, page faults
    and munmap: ~1 s of kernel time per GB fetched from S3). The trim threshold stays glibc's:
    pinning it as well gains nothing and costs 10 MB at 100k files.
    Commands that move data call it; the library leaves the process's allocator alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc (musl has no such knob and no such growth)

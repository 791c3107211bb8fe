"""What commands print: progress bars on stderr, the check-out line, and the allocator setting of
commands that move data; sizes, counts and the diff line come from fastreg/text.py (the web view
shows them too)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastreg.text import count, diff_summary, human

if TYPE_CHECKING:
    from fastreg.repo.checkout import CheckoutResult

__all__ = ["Bar", "checked_out", "count", "diff_summary", "human", "progress_bar", "say", "steady_malloc"]


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

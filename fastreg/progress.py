"""Progress reporting, as every layer sees it: a callable for work done plus a phase change.
The CLI implements it with tqdm on a terminal; library callers pass None or their own."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, files: int, nbytes: int) -> None:
        """`files` files and `nbytes` bytes more are done."""

    def phase(self, name: str, total_bytes: int | None = None) -> None:
        """A new phase starts (scan, plan, upload, download, checkout), of total_bytes if known."""


def phase(progress: Progress | None, name: str, total_bytes: int | None = None) -> None:
    if progress is not None:
        progress.phase(name, total_bytes)

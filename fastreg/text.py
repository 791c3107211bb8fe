"""Text that the CLI and the web view both show: sizes, counts with their plural, the summary
line of a diff. Pure functions, no I/O, below every layer that prints."""

from __future__ import annotations


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
    """The last line `fastreg diff` prints: "2 files added (1.2 MB), 0 deleted, ...", from a
    DiffResult.summary() (its kinds in their order)."""

    def part(k: str) -> str:
        files, nbytes = summary[k]["files"] or 0, summary[k]["bytes"]
        if not files:
            return f"0 {k}"
        return f"{count(files, 'file')} {k}" + (f" ({human(nbytes)})" if nbytes is not None else "")

    return ", ".join(part(k) for k in summary)

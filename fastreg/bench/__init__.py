"""`fastreg bench`: what a storage backend does for fastreg's traffic. runner.py has the method,
dataset.py the end-to-end round trip, core.py puts them together, report.py prints the table and
draws the plot. This module holds only what the argument parser needs (it is imported by every
CLI start)."""

from __future__ import annotations

import re

from fastreg.errors import UsageError

SCHEMA = 1
DEFAULT_SIZES = "64K,1M,16M,64M"
DEFAULT_JOBS = "1,8,32,64"
DEFAULT_DURATION = "60s"
MAX_SIZE = 1 << 30
MAX_JOBS = 1024


# -- arguments ---------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    out = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:I?B)?\s*", part.upper())
        if not m:
            raise UsageError(f"--sizes: {part.strip()!r} is not a size (e.g. 64K, 1M, 16M)")
        n = int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
        if not 1 <= n <= MAX_SIZE:
            raise UsageError(f"--sizes: {part.strip()} is out of range (1 byte to 1G)")
        out.add(n)
    return sorted(out)


def parse_jobs(text: str) -> list[int]:
    out = set()
    for part in text.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= MAX_JOBS:
            raise UsageError(f"--jobs: {part.strip()!r} is not a concurrency from 1 to {MAX_JOBS}")
        out.add(int(part))
    return sorted(out)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*", text.lower())
    if not m:
        raise UsageError(f"--duration: {text!r} is not a duration (e.g. 30s, 2m, 500ms)")
    seconds = float(m.group(1)) * {None: 1, "s": 1, "ms": 0.001, "m": 60, "min": 60}[m.group(2)]
    if seconds <= 0:
        raise UsageError("--duration must be more than zero")
    return seconds


def human_size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)



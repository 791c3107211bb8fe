"""Keep deletions out of the timed stretches of a benchmark.

On this VM's ext4 (no journal) the inode allocator skips every inode freed in the last 60 s and
looks each one up on the way (perf: `find_inode_bit` -> `recently_deleted`). Right after an
`rm -rf` of a 10k-file clone, creating files costs several times more: a third of a pull's CPU
went there, and whichever tool ran just after a delete paid for it (our first runs of this session
put fastreg right after the previous pair's clean-up). So the benchmarks never delete between
measurements: what they are done with is renamed into a trash folder (no inode freed), and the
trash is emptied at the end of a phase, followed by a pause before anything else is timed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRASH = HERE / "work" / "trash"
RECENT = 61  # seconds: ext4 treats an inode freed less than a minute ago as recently deleted


def retire(path: Path) -> None:
    """Move path out of the way (a rename into the trash); nothing is deleted yet."""
    if not os.path.lexists(path):
        return
    TRASH.mkdir(parents=True, exist_ok=True)
    os.rename(path, TRASH / f"{path.name}-{os.urandom(4).hex()}")


def empty(pause: bool = True) -> None:
    """Delete the trash; with pause, wait until its inodes no longer count as recently freed."""
    if not TRASH.exists():
        return
    shutil.rmtree(TRASH)
    if pause:
        subprocess.run(["sync"], check=True)
        time.sleep(RECENT)

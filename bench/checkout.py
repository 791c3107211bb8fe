"""A check-out of the 10k-image tree from the cache (copy mode), timed, alternating between this
fastreg and another build of it (--other DIR: a source tree whose fastreg/ is put first on
PYTHONPATH), so both see the same page cache and the same moment of this VM.

    python bench/checkout.py [--runs 5] [--other /path/to/older/fastreg/tree] [--large-mb 512]

Wall time and user CPU of the command (user CPU is fastreg's own work; on this VM the wall time
is mostly the kernel writing the page cache, which swings from run to run).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE.parent))

from bench.gen import images, large  # noqa: E402
from bench.trash import retire  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--other", type=Path, default=None, help="source tree of the fastreg to compare with")
    ap.add_argument("--large-mb", type=int, default=0, help="check out one file of this many MiB instead")
    args = ap.parse_args()
    src = WORK / "images-10000"
    if args.large_mb:
        src = WORK / f"large-{args.large_mb}"
        if not src.exists():
            src.mkdir(parents=True)
            large(src / "model.bin", args.large_mb << 20, seed=3)
    elif not src.exists():
        images(src, 5000, 5000, 1, seed=7, mean_kb=100)
    exe = str(Path(sys.executable).with_name("fastreg"))
    proj = WORK / "checkout-ab"
    retire(proj)
    proj.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    shutil.copytree(src, proj / "ds")
    subprocess.run([exe, "-q", "init"], cwd=proj, check=True)
    subprocess.run([exe, "-q", "add", "ds"], cwd=proj, check=True)
    sides = {"this": dict(os.environ)}
    if args.other is not None:
        sides["other"] = {**os.environ, "PYTHONPATH": str(args.other)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}  # user seconds: the part that is fastreg's own
    for _ in range(args.runs):
        for name, env in sides.items():
            shutil.rmtree(proj / "ds")
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([exe, "-q", "checkout", "ds"], cwd=proj, env=env, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(after.ru_utime - before.ru_utime)
    for name, ts in times.items():
        print(f"{name}: wall median {statistics.median(ts):.2f} s ({', '.join(f'{t:.2f}' for t in ts)}); "
              f"user CPU median {statistics.median(cpu[name]):.2f} s ({', '.join(f'{t:.2f}' for t in cpu[name])})")
    retire(proj)


if __name__ == "__main__":
    main()

"""Reads through a registry, alternating between this fastreg and another build of it (--other
DIR: a source tree whose fastreg/ is put first on PYTHONPATH), each run in a fresh interpreter,
on the same registry on SeaweedFS (127.0.0.1) in the same run: what a change to the read path
(the reader, the event-loop bridge, the ranged-read primitive) must not make slower.

    python bench/reads_ab.py --other /path/to/older/tree [--runs 8] [--files 2000]

Per run: `fastreg://` opened on the registry, 500 images opened and read one by one with the user
cache cold (a Dataset's __getitem__ over fsspec), the same 500 again (from the user cache); then a
RegistryDataset made with a cold sample cache, a shuffled epoch of 1,000 images (ranged GETs of
the packs), and the same epoch again (from the sample cache). Medians of --runs; both builds need
their native extension built (copy this tree's fastreg/*.so into the other's when the .pyx files
are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE.parent))

from bench.gen import images  # noqa: E402
from bench.tools import ensure_bytecode, fastreg_cmd  # noqa: E402
from bench.trash import retire  # noqa: E402

SCRIPT = r"""
import json, os, random, shutil, sys, time
reg, work = sys.argv[1], sys.argv[2]
os.environ["XDG_CACHE_HOME"] = os.path.join(work, "xdg")
shutil.rmtree(os.path.join(work, "xdg", "fastreg", "cache"), ignore_errors=True)
shutil.rmtree(os.path.join(work, "samples"), ignore_errors=True)
import fsspec
from fastreg.data import RegistryDataset
out = {}
t = time.perf_counter()
fs = fsspec.filesystem("fastreg", repo=reg)
paths = sorted(fs.find("ds/data/train"))[:500]
out["open fastreg://, find"] = time.perf_counter() - t
for key in ("500 opened one by one, cold", "the same 500 again"):
    t = time.perf_counter()
    for p in paths:
        with fs.open(p) as f:
            f.read()
    out[key] = time.perf_counter() - t
t = time.perf_counter()
ds = RegistryDataset(reg, "ds/data/train", cache_dir=os.path.join(work, "samples"))
out["RegistryDataset made"] = time.perf_counter() - t
order = list(range(len(ds)))
random.Random(1).shuffle(order)
for key in ("epoch 1 (ranged GETs)", "epoch 2 (sample cache)"):
    t = time.perf_counter()
    for i in order:
        ds[i]
    out[key] = time.perf_counter() - t
ds.close()
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", type=Path, required=True, help="source tree of the fastreg to compare with")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

    ensure_bytecode()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.other / "fastreg")], check=True)
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    server = start_seaweed()
    work = WORK / "reads-ab"
    retire(work)
    try:
        make_bucket(server.endpoint, "reads-ab")
        reg = work / "reg"
        reg.mkdir(parents=True)
        exe = fastreg_cmd()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=reg, check=True)
        subprocess.run([*exe, "-q", "init"], cwd=reg, check=True)
        subprocess.run([*exe, "-q", "remote", "add", "-d", "store", "s3://reads-ab/r"], cwd=reg, check=True)
        subprocess.run([*exe, "-q", "remote", "modify", "store", "endpoint_url", server.endpoint], cwd=reg, check=True)
        images(reg / "ds", args.files // 2, args.files // 2, 1, seed=5, mean_kb=30)
        subprocess.run([*exe, "-q", "add", "ds"], cwd=reg, check=True)
        subprocess.run([*exe, "-q", "push"], cwd=reg, check=True)
        subprocess.run(["git", "add", "-A"], cwd=reg, check=True)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x.invalid", "commit", "-qm", "ds"], cwd=reg,
                       check=True)
        sides = {"this": dict(os.environ), "other": {**os.environ, "PYTHONPATH": str(args.other)}}
        got: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
        for _ in range(args.runs + 1):  # the first round warms the Git mirror and the page cache
            for name, env in sides.items():
                p = subprocess.run([sys.executable, "-c", SCRIPT, str(reg), str(work)], env=env, check=True,
                                   capture_output=True, text=True)
                got[name].append(json.loads(p.stdout))
        print("| step | this (s) | other (s) | this / other |\n|---|---:|---:|---:|")
        for step in got["this"][0]:
            a = statistics.median(r[step] for r in got["this"][1:])
            b = statistics.median(r[step] for r in got["other"][1:])
            print(f"| {step} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    finally:
        server.stop()
        retire(work)


if __name__ == "__main__":
    main()

"""fsspec side by side: fastreg:// (fastreg.registry.fsspec.FastregFileSystem) vs DVC's DVCFileSystem on the
same 10k-image registry on SeaweedFS (127.0.0.1), same run.

Measured in a fresh interpreter per run, data caches cold (fastreg keeps its registry's Git
mirror, as it does between commands; DVC clones the registry into the filesystem object): making
the filesystem, `fs.find` of the dataset, `fs.cat_file` of one image, `fs.cat` of 1,000 images, 1,000
other images opened and read one by one (as a Dataset's __getitem__ does), twice; and,
in an interpreter of its own, one image from nothing (make the filesystem, `fs.cat_file`).
Each figure is the median of --repeat runs.

    python bench/fs.py [--repeat 3]
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
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.gen import images  # noqa: E402
from bench.registry import build_registry  # noqa: E402
from bench.trash import empty, retire  # noqa: E402

IMAGE = "use-cases/cats-dogs/data/train/cats/cat.0001.jpg"
DATASET = "use-cases/cats-dogs"

# Runs inside the tool's own interpreter; prints the seconds of each step as JSON.
SCRIPT = r"""
import json, sys, time
tool, url = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if tool == "fastreg":
    import fsspec
    fs = fsspec.filesystem("fastreg", repo=url, rev="cats-dogs-v2")
else:
    from dvc.api import DVCFileSystem
    fs = DVCFileSystem(url, rev="cats-dogs-v2")
t1 = time.perf_counter()
if sys.argv[3] == "one":  # one image and nothing else: what a training job's first read costs
    one = fs.cat_file("IMAGE")
    print(json.dumps({"one_cold": time.perf_counter() - t0}))
    sys.exit(0)
found = fs.find("DATASET")
t2 = time.perf_counter()
one = fs.cat_file("IMAGE")
t3 = time.perf_counter()
some = sorted(p for p in found if p.endswith(".jpg"))[:1000]
t4 = time.perf_counter()
got = fs.cat(some)
t5 = time.perf_counter()
others = sorted(p for p in found if p.endswith(".jpg"))[1000:2000]
opened = []
for _ in range(2):  # a Dataset's __getitem__: one open + read per image, then the same epoch again
    t6 = time.perf_counter()
    n = 0
    for p in others:
        with fs.open(p, "rb") as f:
            n += len(f.read())
    opened.append(time.perf_counter() - t6)
assert len(found) == 11000 and len(got) == 1000 and len(one) > 0, (len(found), len(got))
print(json.dumps({"open": t1 - t0, "find": t2 - t1, "cat_one": t3 - t2, "cat_1000": t5 - t4,
                  "bytes_1000": sum(len(v) for v in got.values()), "open_1000": opened[0],
                  "open_1000_again": opened[1]}))
""".replace("DATASET", DATASET).replace("IMAGE", IMAGE)


def run_once(python: str, tool: str, url: str, env: dict[str, str]) -> dict[str, float]:
    result: dict[str, float] = {}
    for mode in ("one", "all"):
        retire(WORK / "xdg" / "fastreg" / "cache")  # cold data caches; fastreg's Git mirror stays
        retire(WORK / "xdg" / "dvc")
        out = subprocess.run([python, "-c", SCRIPT, tool, url, mode], capture_output=True, text=True, env=env,
                             cwd=WORK)
        if out.returncode != 0:
            raise SystemExit(f"bench: {tool} failed:\n{out.stderr[-3000:]}")
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def main(repeat: int) -> list[str]:
    from bench.tools import ensure_bytecode, ensure_dvc
    from tests.servers import ACCESS_KEY, SECRET_KEY, free_ports, make_bucket, start_gateway, start_seaweed

    dvc = ensure_dvc()
    ensure_bytecode()
    src = WORK / "images-10000"
    if not src.exists():
        images(src, 5000, 5000, 1, seed=7, mean_kb=100)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "XDG_CACHE_HOME": str(WORK / "xdg"),
           "DVC_SITE_CACHE_DIR": str(WORK / "xdg" / "dvc" / "site")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    fastreg_exe = Path(sys.executable).with_name("fastreg")
    tools = {"fastreg": [str(fastreg_exe)], "dvc": [str(dvc)]}
    pythons = {"fastreg": sys.executable, "dvc": str(dvc.with_name("python"))}
    retire(WORK / "xdg")  # registry mirrors of an earlier run know its tags (which this run makes again)
    server = start_seaweed()
    [port] = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    res: dict[str, dict[str, float]] = {}
    try:
        gateway = start_gateway(server, port)
        try:
            for tool in ("fastreg", "dvc"):
                make_bucket(server.endpoint, f"fs-{tool}")
                reg = WORK / f"fs-registry-{tool}"
                print(f"bench: building the {tool} registry", file=sys.stderr)
                build_registry(tool, reg, src, f"s3://fs-{tool}/store", endpoint, tools, env)
            runs: dict[str, list[dict[str, float]]] = {"fastreg": [], "dvc": []}
            run_once(pythons["fastreg"], "fastreg", str(WORK / "fs-registry-fastreg"), env)  # the Git mirror
            for i in range(repeat):  # alternate the tools: the VM's page costs drift over time
                for tool in ("fastreg", "dvc") if i % 2 == 0 else ("dvc", "fastreg"):
                    print(f"bench: {tool}, run {i + 1}", file=sys.stderr)
                    runs[tool].append(run_once(pythons[tool], tool, str(WORK / f"fs-registry-{tool}"), env))
            for tool, rs in runs.items():
                res[tool] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        finally:
            gateway.stop()
    finally:
        server.stop()
        empty(pause=False)
    f, d = res["fastreg"], res["dvc"]
    lines = [
        "",
        "## fsspec: fastreg:// vs DVCFileSystem (10k-image registry on SeaweedFS)",
        "",
        f"Command: `python bench/fs.py --repeat {repeat}`. Fresh interpreter per run, cold data caches "
        "(fastreg keeps the registry's Git mirror between runs, as between commands; DVC clones the "
        "registry when the filesystem is made); medians of the runs, tools alternating.",
        "",
        "| step | fastreg (s) | DVCFileSystem (s) | DVC / fastreg |",
        "|---|---:|---:|---:|",
    ]
    for label, key in (("one image from nothing (make the filesystem + cat_file)", "one_cold"),
                       ("make the filesystem (rev cats-dogs-v2)", "open"), ("find the dataset (11,000 files)", "find"),
                       ("cat_file one image, after find", "cat_one"), ("cat 1,000 images", "cat_1000"),
                       ("open + read 1,000 other images one by one", "open_1000"),
                       ("the same 1,000 opened again", "open_1000_again")):
        lines.append(f"| {label} | {f[key]:.3f} | {d[key]:.3f} | **{d[key] / f[key]:.1f}×** |")
    lines.append(f"| cat 1,000 images (MB read) | {f['bytes_1000'] / 1e6:.1f} | {d['bytes_1000'] / 1e6:.1f} | |")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    print("\n".join(main(ap.parse_args().repeat)))

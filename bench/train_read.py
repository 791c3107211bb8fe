"""Training reads, side by side in one run: one generated image-like dataset (default 50k files of
~30 KiB in 100 class folders) pushed to SeaweedFS on 127.0.0.1 by fastreg, and a DVC copy of the
same files pushed by DVC to the same server; every reader goes through a real torch DataLoader
with 4 workers, from a cold user cache:

  (a) the floor: `fastreg bench`'s GET throughput for 16 MiB objects on the same store
  (b) the same files pulled to local disk (`fastreg get`), read per file, shuffled
  (c) RegistryIterableDataset            (d) RegistryDataset, shuffled
  (c0) (c) with the cache off, and the write floor: `cp -a` of the same files, before (c) and (d)
  (e) fastreg:// open per file, shuffled (f) DVC's DVCFileSystem, read per file, shuffled
  (g) epochs 2 and 3 of (c) and (d), from their local cache (with what epoch 1 could keep)

then the index of a 1M-sample dataset: built from a synthetic 1M tree of the same format, the
worker's plan for one epoch, and its RSS. torch goes into the benchmark's own virtualenvs
(bench/work/train-venv with fastreg, and DVC's), never into fastreg's requirements.

    python bench/train_read.py [--files 50000] [--kb 30] [--limit 3000]   # prints a RESULTS.md section
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.tools import ensure_bytecode, ensure_dvc, fastreg_cmd, git_project, sh  # noqa: E402
from bench.trash import empty, retire  # noqa: E402

TORCH = "torch==2.13.0"  # the CPU build this project's machines have on disk
CLASSES = 100
DATA = "data/train"


def ensure_train_venv() -> Path:
    """bench/work/train-venv: torch + fastreg (installed from this checkout)."""
    venv = WORK / "train-venv"
    py = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        print("bench: making", venv, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", TORCH], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
        (venv / ".ready").touch()
    return py


def ensure_dvc_torch(dvc: Path) -> Path:
    py = dvc.with_name("python")
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0:
        print("bench: installing torch into DVC's virtualenv", file=sys.stderr)
        subprocess.run([str(py), "-m", "pip", "install", "-q", TORCH], check=True)
    return py


def generate(root: Path, files: int, kb: float, seed: int = 5) -> int:
    """files of about kb KiB (lognormal sizes, incompressible) in CLASSES folders; bytes written."""
    rng = random.Random(seed)
    block = os.urandom(8 << 20)
    total = 0
    sigma = 0.5
    mu = math.log(kb * 1024) - sigma * sigma / 2
    for i in range(files):
        d = root / DATA / f"class{i % CLASSES:03d}"
        if i < CLASSES:
            d.mkdir(parents=True, exist_ok=True)
        size = min(len(block) - 8, max(64, int(rng.lognormvariate(mu, sigma))))
        off = rng.randrange(0, len(block) - size)
        (d / f"img_{i:07d}.jpg").write_bytes(i.to_bytes(8, "big") + block[off : off + size - 8])
        total += size
    return total


def build(tool: str, cmd: list[str], path: Path, src: Path, url: str, endpoint: str, env: dict[str, str]) -> None:
    retire(path)
    git_project(path)
    subprocess.run(["cp", "-a", str(src / "data"), str(path / "data")], check=True)
    sh([*cmd, "init", "-q"], path, env)
    sh([*cmd, "remote", "add", "-d", "store", url], path, env)
    sh([*cmd, "remote", "modify", "store", "endpoint_url" if tool == "fastreg" else "endpointurl", endpoint],
       path, env)
    if tool == "dvc":
        sh([*cmd, "config", "core.autostage", "false"], path, env)
    sh([*cmd, "add", "-q", "data"], path, env)
    sh([*cmd, "push", "-q"], path, env)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "v1"], cwd=path, check=True)
    subprocess.run(["git", "tag", "v1"], cwd=path, check=True)
    retire(path / (".fastreg" if tool == "fastreg" else ".dvc") / "cache")  # readers must go to the remote
    retire(path / "data")


def floor(fastreg: list[str], url: str, endpoint: str, env: dict[str, str]) -> float:
    """MiB/s of whole 16 MiB GETs (the best of 4 and 16 at once), as `fastreg bench` measures it."""
    out = subprocess.run([*fastreg, "bench", url, "--sizes", "16M", "-j", "4,16", "--duration", "30s", "--json",
                          "--endpoint-url", endpoint], env=env, capture_output=True, text=True, check=True).stdout
    cells = json.loads(out)["cells"]
    return max(c["mib_per_s"] or 0.0 for c in cells if c["op"] == "get")


def write_floor(tree: Path, nbytes: int) -> float:
    """MiB/s of `cp -a` of the dataset's files (read from the page cache) to a fresh folder: what
    writing every byte to local disk costs on this machine, the bound of a cold epoch that keeps
    everything it reads."""
    out = WORK / "train-cp"
    retire(out)
    t = time.perf_counter()
    subprocess.run(["cp", "-a", str(tree), str(out)], check=True)  # into the page cache, as the cache writes
    dt = time.perf_counter() - t
    retire(out)
    return nbytes / dt / (1 << 20)


def loader(py: Path, mode: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """One reader run through bench/train_loader.py (a fresh process, cold user cache)."""
    xdg = WORK / "train-xdg"
    retire(xdg)
    e = {**env, "XDG_CACHE_HOME": str(xdg), "DVC_SITE_CACHE_DIR": str(xdg / "dvc-site")}
    p = subprocess.run([str(py), str(HERE / "train_loader.py"), mode, *args], env=e, capture_output=True,
                       text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"bench: {mode} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def index_1m(py: Path) -> dict[str, float]:
    """The sample index of a 1M-sample dataset (synthetic records in the real format, 1,000
    classes, ImageNet-like names, packs filled in path order as a push fills them): its size, and
    the peak RSS of a forked worker (torch imported, as in a DataLoader worker) that maps it, plans
    its quarter of an epoch and looks up every planned sample's path, label and location (all a
    worker holds besides the samples in flight); the same for torch alone, for scale."""
    code = r"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch  # a DataLoader worker has torch imported

def hwm():
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

def in_child(work):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, json.dumps(work()).encode())
        os._exit(0)
    os.close(w)
    out = b"".join(iter(lambda: os.read(r, 1 << 16), b""))
    os.waitpid(pid, 0)
    return json.loads(out)

from fastreg.data import order
from fastreg.data.sample_index import SampleIndex, build
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location
out = Path(sys.argv[2])
if not out.exists():
    def make():
        names = sorted(f"n{i % 1000:08d}/n{i % 1000:08d}_{i:07d}.JPEG" for i in range(1_000_000))
        packs = [os.urandom(16) for _ in range(2000)]
        files, where = [], {}
        for k, name in enumerate(names):
            d = k.to_bytes(16, "big")
            files.append((name, FileRecord(110_000, d, b"")))
            where[d] = Location(packs[k // 500], (k % 500) * 110_000, 110_000)
        build(out, "url", "c" * 40, "train", "s3://b/r", files, where)
        return 0
    in_child(make)

def plan():
    t = time.perf_counter()
    ix = SampleIndex(out)
    _, todo = order.epoch_plan(ix, 0, 0, 0, 4, 1000)
    for i in todo:
        ix.path(i), ix.label(i), ix.where(i)
    return {"n": len(ix), "planned": len(todo), "plan_s": time.perf_counter() - t, "worker_rss_kb": hwm()}

res = in_child(plan)
res["torch_rss_kb"] = in_child(lambda: {"kb": hwm()})["kb"]
res["bytes"] = out.stat().st_size
print(json.dumps(res))
"""
    ix = WORK / "index-1m-v2.samples"
    p = subprocess.run([str(py), "-c", code, str(ROOT), str(ix)], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"bench: the 1M index failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--kb", type=float, default=30)
    ap.add_argument("--limit", type=int, default=3000, help="samples read by the per-file readers (e) and (f)")
    a = ap.parse_args()
    from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

    ensure_bytecode()
    py = ensure_train_venv()
    dvc = ensure_dvc()
    dvc_py = ensure_dvc_torch(dvc)
    fastreg = fastreg_cmd()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "XDG_CACHE_HOME": str(WORK / "xdg")}
    env.pop("AWS_PROFILE", None)
    src = WORK / f"train-{a.files}-{a.kb:g}k"
    if not (src / ".done").exists():
        print(f"bench: generating {a.files:,} files", file=sys.stderr)
        retire(src)
        generate(src, a.files, a.kb)
        (src / ".done").touch()
    nbytes = sum(p.stat().st_size for p in (src / DATA).rglob("*") if p.is_file())
    server = start_seaweed()
    res: dict[str, dict[str, Any]] = {}
    writes: list[float] = []
    try:
        for b in ("train-fastreg", "train-dvc", "train-floor"):
            make_bucket(server.endpoint, b)
        reg, dreg = WORK / "train-registry", WORK / "train-dvc-registry"
        print("bench: building the fastreg registry and the DVC copy", file=sys.stderr)
        build("fastreg", fastreg, reg, src, "s3://train-fastreg/reg", server.endpoint, env)
        build("dvc", [str(dvc)], dreg, src, "s3://train-dvc/store", server.endpoint, env)
        empty()
        print("bench: (a) the GET floor", file=sys.stderr)
        mib_floor = floor(fastreg, "s3://train-floor/bench", server.endpoint, env)
        print("bench: (b) local files", file=sys.stderr)
        local = WORK / "train-local"
        retire(local)
        sh([*fastreg, "get", str(reg), DATA, "-o", str(local)], WORK, env)
        res["b"] = loader(py, "local", env, "--local", str(local), "--epochs", "2")
        common = ["--repo", str(reg), "--path", DATA, "--rev", "v1"]
        print("bench: (c0) iter, no cache", file=sys.stderr)
        res["c0"] = loader(py, "iter", env, *common, "--cache", str(WORK / "train-cache-none"), "--cache-limit", "0")
        for key, mode in (("c", "iter"), ("d", "map")):
            print(f"bench: the write floor, then ({key}) {mode}", file=sys.stderr)
            writes.append(write_floor(src / DATA, nbytes))
            cache = WORK / f"train-cache-{mode}"
            retire(cache)
            res[key] = loader(py, mode, env, *common, "--cache", str(cache), "--epochs", "3")
        print("bench: (e) fastreg:// per file", file=sys.stderr)
        res["e"] = loader(py, "fsspec", env, *common, "--limit", str(a.limit))
        print("bench: (f) DVCFileSystem per file", file=sys.stderr)
        res["f"] = loader(dvc_py, "dvc", env, "--repo", str(dreg), "--path", DATA, "--rev", "v1",
                          "--limit", str(a.limit))
        print("bench: the 1M-sample index", file=sys.stderr)
        big = index_1m(py)
    finally:
        server.stop()
        empty(pause=False)

    def rate(r: dict[str, Any], epoch: int = 0) -> tuple[float, float]:
        e = r["epochs"][epoch]
        return e["samples"] / e["seconds"], e["bytes"] / e["seconds"] / (1 << 20)

    def kept(key: str, epoch: int) -> str:
        return f"{min(1.0, res[key]['epochs'][epoch]['cache_bytes'] / nbytes):.0%}"

    rows = [("(b) local files, open/read per file (epoch 1)", res["b"], 0),
            ("(c) RegistryIterableDataset (cold)", res["c"], 0),
            ("(c0) RegistryIterableDataset, cache off (`cache_limit=0`)", res["c0"], 0),
            ("(d) RegistryDataset, shuffled (cold)", res["d"], 0),
            (f"(e) fastreg:// open per file ({a.limit:,} samples)", res["e"], 0),
            (f"(f) DVC DVCFileSystem per file ({a.limit:,} samples)", res["f"], 0),
            (f"(g) epoch 2 of (c) (epoch 1 kept {kept('c', 0)})", res["c"], 1),
            (f"(g) epoch 2 of (d) (epoch 1 kept {kept('d', 0)})", res["d"], 1),
            (f"(g) epoch 3 of (c) (the cache holds {kept('c', 1)})", res["c"], 2),
            (f"(g) epoch 3 of (d) (the cache holds {kept('d', 1)})", res["d"], 2)]
    title = f"## Training reads: {a.files:,} files of ~{a.kb:g} KiB ({nbytes / 1e9:.2f} GB) in {CLASSES} classes"
    lines = ["", f"{title} on SeaweedFS", "",
             "Each reader through a torch DataLoader (torch 2.13.0 CPU, in the benchmark's own virtualenvs), "
             "4 workers, batch 64, a collate that counts bytes, from a cold user cache; setup is constructing the "
             "dataset (for fastreg: resolving the revision and building the sample index). Peak RSS and PSS: the "
             "largest of the 4 workers (VmHWM; PSS shares the pages workers have in common).", "",
             "(a) the floor, `fastreg bench` GET of 16 MiB objects (best of 4 and 16 at once): "
             f"**{mib_floor:.0f} MiB/s**; the write floor, `cp -a` of the same files just before (c) and (d): "
             f"**{writes[0]:.0f}** and **{writes[1]:.0f} MiB/s** (a cold epoch that keeps what it reads writes every "
             "byte)",
             "", "| reader | setup (s) | samples/s | MiB/s | × floor | worker peak RSS / PSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, r, epoch in rows:
        sps, mbs = rate(r, epoch)
        lines.append(f"| {label} | {r['setup']:.2f} | {sps:,.0f} | {mbs:.0f} | {mbs / mib_floor:.2f} | "
                     f"{r['worker_peak_rss_mib']:.0f} / {r['worker_pss_mib']:.0f} |")
    c, f, b = rate(res["c"])[0], rate(res["f"])[0], rate(res["b"])[0]
    g_c, g_d = rate(res["c"], 1)[0], rate(res["d"], 1)[0]
    g3_c, g3_d = rate(res["c"], 2)[0], rate(res["d"], 2)[0]
    lines += ["", "Targets: "
              f"(c) ≥ 0.8× floor: **{rate(res['c'])[1] / mib_floor:.2f}×** (× the write floor: "
              f"**{rate(res['c'])[1] / writes[0]:.2f}×**; with the cache off: "
              f"**{rate(res['c0'])[1] / mib_floor:.2f}×**); "
              f"(d) ≥ 0.3× floor: **{rate(res['d'])[1] / mib_floor:.2f}×** (× the write floor: "
              f"**{rate(res['d'])[1] / writes[1]:.2f}×**); "
              f"(c) ≥ 10× (f): **{c / f:.0f}×**; "
              f"(g) ≥ 0.8× (b): epoch 2 **{g_c / b:.2f}×** (c), **{g_d / b:.2f}×** (d); epoch 3, all from the "
              f"cache: **{g3_c / b:.2f}×** (c), **{g3_d / b:.2f}×** (d).", "",
              f"The index of a 1M-sample dataset (synthetic tree, 1,000 classes, ImageNet-style names): "
              f"{big['bytes'] / 1e6:.1f} MB ({big['bytes'] / big['n']:.0f} bytes a sample); a forked worker (torch "
              f"imported) that maps it, plans its quarter of an epoch ({big['planned']:,} samples) and looks up "
              f"each one's path, label and location: {big['plan_s']:.2f} s, peak RSS "
              f"**{big['worker_rss_kb'] / 1024:.0f} MiB** (target ≤ 250 MB; a forked worker with torch alone: "
              f"{big['torch_rss_kb'] / 1024:.0f} MiB)."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

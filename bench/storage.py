"""`fastreg bench` checked against independent tools on the same endpoint in the same run.

Starts a SeaweedFS on 127.0.0.1, runs `fastreg bench` on it (PUT and GET of whole objects at a few
sizes and concurrencies), then the same cells with
- plain boto3 and a thread pool (bench/boto3_ref.py, in its own virtualenv bench/work/boto3-venv):
  REF_BYTES written as objects of that size, each read back once;
- rclone (when installed): `rclone copy --transfers J` of REF_BYTES as files of that size, up from
  tmpfs and down to tmpfs (local disk does not count), one request per object each way;
and prints the throughputs and fastreg's ratio to each. Also writes the example table and plot the
README shows (docs/bench-seaweedfs.txt, docs/bench-seaweedfs.png).

    python bench/storage.py [--duration 40s] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CELLS = [(64 << 10, 32), (1 << 20, 16), (16 << 20, 8)]  # (object size, concurrency) compared
REF_BYTES = {64 << 10: 256 << 20, 1 << 20: 1 << 30, 16 << 20: 2 << 30}  # per cell and direction
WORK = HERE / "work"


def boto3_python() -> str:
    venv = WORK / "boto3-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        WORK.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "boto3"], check=True)
    return str(py)


def boto3_ref(size: int, jobs: int, endpoint: str, bucket: str, env: dict[str, str]) -> tuple[float, float]:
    p = subprocess.run([boto3_python(), str(HERE / "boto3_ref.py"), endpoint, bucket, str(size), str(jobs),
                        str(REF_BYTES[size])], capture_output=True, text=True, env=env, check=True)
    r = json.loads(p.stdout)
    return float(r["put_mib_per_s"]), float(r["get_mib_per_s"])


def fastreg_bin() -> str:
    here = Path(sys.executable).parent / "fastreg"
    return str(here) if here.exists() else "fastreg"


def run_bench(url: str, endpoint: str, sizes: str, jobs: str, duration: str, extra: list[str],
              env: dict[str, str]) -> dict:
    cmd = [fastreg_bin(), "bench", url, "--endpoint-url", endpoint, "--sizes", sizes, "--jobs", jobs,
           "--duration", duration, "--json", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{p.stderr}")
    doc: dict = json.loads(p.stdout)
    return doc


def rclone(size: int, jobs: int, endpoint: str, bucket: str, env: dict[str, str]) -> tuple[float, float]:
    """MiB/s of rclone copying REF_BYTES as objects of `size`, `jobs` at a time, up then down."""
    renv = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    renv.update({
        "RCLONE_CONFIG_SW_TYPE": "s3", "RCLONE_CONFIG_SW_PROVIDER": "Other",
        "RCLONE_CONFIG_SW_ENDPOINT": endpoint, "RCLONE_CONFIG_SW_REGION": "us-east-1",
        "RCLONE_CONFIG_SW_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
    })
    n = REF_BYTES[size] // size
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    src = Path(tempfile.mkdtemp(prefix="fastreg-rclone-src-", dir=shm))
    dst = Path(tempfile.mkdtemp(prefix="fastreg-rclone-dst-", dir=shm))
    try:
        block = os.urandom(size)
        for i in range(n):
            (src / f"o{i:05d}").write_bytes(block[i % 251:] + block[: i % 251])
        # One request per object each way, as fastreg bench makes: no MD5 of the data, no HEAD after
        # each upload or before each download, no listing of the destination, no multipart.
        common = ["--transfers", str(jobs), "--checkers", str(jobs), "--s3-upload-cutoff", "1G",
                  "--s3-disable-checksum", "--s3-no-head", "--no-check-dest", "--no-traverse", "-q"]
        prefix = f"sw:{bucket}/rclone-{size}-{jobs}"
        t0 = time.perf_counter()
        subprocess.run(["rclone", "copy", *common, str(src), prefix], env=renv, check=True)
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["rclone", "copy", "--transfers", str(jobs), "--multi-thread-streams", "0", "--ignore-checksum",
                        "--s3-no-head-object", "-q", prefix, str(dst)], env=renv, check=True)
        down = time.perf_counter() - t0
        subprocess.run(["rclone", "purge", "-q", prefix], env=renv, check=True)
    finally:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(dst, ignore_errors=True)
    mib = n * size / 2**20
    return mib / up, mib / down


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="40s", help="fastreg bench's budget for the compared cells")
    ap.add_argument("--no-docs", action="store_true", help="skip the example run written to docs/")
    args = ap.parse_args()
    from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    server = start_seaweed()
    try:
        for b in ("bench-fastreg", "bench-boto3", "bench-rclone", "bench-docs"):
            make_bucket(server.endpoint, b)
        has_rclone = shutil.which("rclone") is not None
        rows = []
        for size, jobs in CELLS:
            doc = run_bench("s3://bench-fastreg", server.endpoint, str(size), str(jobs), args.duration, [], env)
            fr = {c["op"]: c["mib_per_s"] for c in doc["cells"] if c["op"] in ("put", "get")}
            b3 = boto3_ref(size, jobs, server.endpoint, "bench-boto3", env)
            rc = rclone(size, jobs, server.endpoint, "bench-rclone", env) if has_rclone else (float("nan"),) * 2
            rows.append((size, jobs, fr, b3, rc))
        print(f"SeaweedFS {server.endpoint}: fastreg bench --duration {args.duration} (per size) vs boto3 threads "
              "and rclone copy, same objects sizes and concurrency\n")
        print("| op | object size | jobs | fastreg MiB/s | boto3 MiB/s | fastreg / boto3 | rclone MiB/s | "
              "fastreg / rclone |")
        print("|---|---|---|---|---|---|---|---|")
        for size, jobs, fr, b3, rc in rows:
            for k, op in enumerate(("put", "get")):
                print(f"| {op.upper()} | {size >> 10} KiB | {jobs} | {fr[op]:.1f} | {b3[k]:.1f} | "
                      f"{fr[op] / b3[k]:.2f} | {rc[k]:.1f} | {fr[op] / rc[k]:.2f} |")
        if not args.no_docs:
            docs = ROOT / "docs"
            cmd = [fastreg_bin(), "bench", "s3://bench-docs", "--endpoint-url", server.endpoint, "--duration", "90s",
                   "--plot", str(docs / "bench-seaweedfs.png")]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            shown = p.stdout.replace(server.endpoint, "http://127.0.0.1:8333")
            (docs / "bench-seaweedfs.txt").write_text(
                "$ fastreg bench s3://bench-docs --endpoint-url http://127.0.0.1:8333 --duration 90s "
                "--plot docs/bench-seaweedfs.png\n" + shown)
            print("\n" + shown)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Many hosts pushing into one S3 registry at once, on a SeaweedFS cluster on 127.0.0.1 (1 master,
3 volume servers, a filer, the S3 gateway).

    python bench/multihost.py [--mb 256] [--hosts 4] [--kb 100]

1. one host pushes MB of images alone (a bucket of its own);
2. HOSTS hosts push MB/HOSTS each at the same moment (the same bytes in all, another bucket):
   aggregate ingest rate against (1), in the same run;
3. two hosts push 1,000 files of which 900 are the same, at the same moment: the bucket's stored
   bytes against the unique bytes (both upload the overlap: no lock between pushers), then what
   one `gc --all-commits -r --grace 0` reclaims.

Every "host" is a clone of its own with its own cache and HOME, run as a separate process. On a
2-core VM this measures contention, not scale-up: the hosts, the cluster and the S3 gateway
share two cores (say so when reporting). No peer here: DVC has no concurrent-push story to
compare (its pushes are per-file PUTs with no shared index); bench/remote.py compares single
pushes with DVC."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "multihost"
sys.path.insert(0, str(ROOT))

from tests.servers import ACCESS_KEY, SECRET_KEY, _client, make_bucket, start_seaweed_cluster  # noqa: E402

FASTREG = str(Path(sys.executable).parent / "fastreg")


def host_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"bench: {' '.join(cmd)} in {cwd} failed:\n{p.stderr}")
    return p.stdout


def write_files(d: Path, n: int, kb: int, seed: str) -> None:
    import random

    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rnd = random.Random(f"{seed}/{i}")
        (d / f"img{i:05}.jpg").write_bytes(rnd.randbytes(kb << 10))


def project(root: Path, bucket: str, endpoint: str) -> dict[str, str]:
    env = host_env(root.parent / f"{root.name}-home")
    root.mkdir(parents=True)
    run(["git", "init", "-q"], root, env)
    run([FASTREG, "-q", "init"], root, env)
    run([FASTREG, "-q", "remote", "add", "-d", "store", f"s3://{bucket}/reg"], root, env)
    run([FASTREG, "-q", "remote", "modify", "store", "endpoint_url", endpoint], root, env)
    return env


def stored(endpoint: str, bucket: str) -> int:
    s3 = _client(endpoint)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="reg/packs/"):
        total += sum(o["Size"] for o in page.get("Contents", []) if len(o["Key"].rsplit("/", 1)[-1]) == 32)
    return total


def push_all(hosts: list[tuple[Path, dict[str, str]]]) -> float:
    started = time.perf_counter()
    procs = [subprocess.Popen([FASTREG, "push"], cwd=r, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r, e in hosts]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"bench: a push failed:\n{err}")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=256, help="bytes each scenario pushes in all")
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--kb", type=int, default=100, help="size of one image")
    args = ap.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    n = (args.mb << 10) // args.kb
    cluster = start_seaweed_cluster(volumes=3, volume_size_mb=64)
    try:
        for b in ("single", "many", "overlap"):
            make_bucket(cluster.endpoint, f"mh-{b}")
            cluster.grow(f"mh-{b}", 2)
        # 1. one host, every byte
        one = WORK / "one"
        env = project(one, "mh-single", cluster.endpoint)
        for h in range(args.hosts):
            write_files(one / "images" / f"host{h}", n // args.hosts, args.kb, f"h{h}")
        run([FASTREG, "-q", "add", "images"], one, env)
        t_one = push_all([(one, env)])
        # 2. the same bytes from HOSTS hosts at once, a shard each
        many = []
        for h in range(args.hosts):
            root = WORK / f"host{h}"
            e = project(root, "mh-many", cluster.endpoint)
            write_files(root / "images" / f"host{h}", n // args.hosts, args.kb, f"h{h}")
            run([FASTREG, "-q", "add", "images"], root, e)
            many.append((root, e))
        t_many = push_all(many)
        # 3. two hosts, 1,000 files, 900 of them the same, at once
        pair = []
        for h in range(2):
            root = WORK / f"pair{h}"
            e = project(root, "mh-overlap", cluster.endpoint)
            write_files(root / "images" / "shared", 900, args.kb, "shared")
            write_files(root / "images" / f"own{h}", 100, args.kb, f"own{h}")
            run([FASTREG, "-q", "add", "images"], root, e)
            pair.append((root, e))
        push_all(pair)
        unique = (900 + 200) * (args.kb << 10)
        before = stored(cluster.endpoint, "mh-overlap")
        # the gc host keeps what both projects' snapshots refer to (no lock between pushers)
        gc_out = run([FASTREG, "gc", "--all-commits", "-r", "--grace", "0"], *pair[0])
        after = stored(cluster.endpoint, "mh-overlap")
    finally:
        cluster.stop()
    mib = args.mb
    print(f"# bench/multihost.py --mb {args.mb} --hosts {args.hosts} --kb {args.kb} "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")
    print("| scenario | s | MiB/s |")
    print("|---|---:|---:|")
    print(f"| 1 host, {mib} MiB | {t_one:.2f} | {mib / t_one:.1f} |")
    print(f"| {args.hosts} hosts at once, {mib // args.hosts} MiB each | {t_many:.2f} | {mib / t_many:.1f} |")
    print(f"aggregate rate {args.hosts} hosts / 1 host: {t_one / t_many:.2f}x")
    print(f"two hosts, 900 of 1,000 files shared: stored {before / (1 << 20):.1f} MiB for {unique / (1 << 20):.1f} "
          f"MiB unique ({before / unique:.2f}x); after one remote gc: {after / (1 << 20):.1f} MiB "
          f"({after / unique:.2f}x; reclaimed {(before - after) / (1 << 20):.1f} MiB)")
    print("gc said:", " ".join(gc_out.split()))


if __name__ == "__main__":
    main()

"""ImageNet-shaped scale: N small files in 1,000 class folders, every step a user takes, timed with
its peak RSS (the command and its children, sampled from /proc every 20 ms).

fastreg against SeaweedFS on 127.0.0.1: cp -a of the tree (the write floor of this moment), add
(cold), status (nothing changed), add again, push, push again (nothing new), +1,000 files into
one folder and push, status --remote, pull into a fresh clone, status in the clone, get of one
file and list of one folder (the registry's Git mirror warmed first, as after any earlier
command). With --dvc, DVC and fastreg side by side on the same tree (add, status,
push, pull; a local-directory remote for both, same run).

    python bench/scale.py --files 100000 --kb 4 [--dvc]
    python bench/scale.py --files 1000000 --kb 4
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.trash import empty, retire  # noqa: E402

CLASSES = 1000


def generate(root: Path, files: int, kb: float, seed: int = 11, start: int = 0, only_class: int | None = None) -> None:
    """files of about kb KiB each (random bytes, sizes +-50%), spread over CLASSES folders named
    like ImageNet's (n01440764...)."""
    rng = random.Random(seed + start)
    block = os.urandom(1 << 20)
    for i in range(start, start + files):
        cls = only_class if only_class is not None else i % CLASSES
        d = root / "train" / f"n{cls:08d}"
        if i < CLASSES or only_class is not None:
            d.mkdir(parents=True, exist_ok=True)
        size = max(1, int(kb * 1024 * rng.uniform(0.5, 1.5)))
        off = rng.randrange(0, len(block) - size)
        (d / f"img_{i:08d}.jpg").write_bytes(i.to_bytes(8, "big") + block[off : off + size - 8])


def _tree_rss(pid: int) -> int:
    """RSS in KiB of pid and every descendant."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of the command and its children). Dirty pages of the steps
    before are written out first (`sync`, untimed): otherwise a step pays for the writeback of
    the one before it (the `cp -a` right after generating the tree took 187 s once, 69 s another
    time)."""
    os.sync()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(p.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = p.communicate()
    dt = time.perf_counter() - t
    done.set()
    sampler.join()
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed in {cwd}:\n{err.decode(errors='replace')[-2000:]}")
    return dt, peak / 1024


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def fastreg_run(n: int, kb: float, env: dict[str, str], endpoint: str | None,
                bucket: str | None) -> list[tuple[str, float, float]]:
    exe = str(Path(sys.executable).with_name("fastreg"))
    rows: list[tuple[str, float, float]] = []
    base = WORK / f"scale-{n}"
    retire(base)
    src = base / "src"
    print(f"bench: generating {n} files", file=sys.stderr)
    generate(src / "ds", n, kb)
    empty()
    proj = base / "proj"
    rows.append(("cp -a of the tree (write floor)", *measure(["cp", "-a", str(src), str(proj)], base, env)))
    git(proj, "init", "-q", "-b", "main")
    git(proj, "config", "user.email", "b@x")
    git(proj, "config", "user.name", "b")
    subprocess.run([exe, "init", "-q"], cwd=proj, check=True, env=env)
    quiet = {"cwd": proj, "check": True, "env": env, "stdout": subprocess.DEVNULL}
    if endpoint:
        subprocess.run([exe, "remote", "add", "-d", "store", f"s3://{bucket}/scale"], **quiet)
        subprocess.run([exe, "remote", "modify", "store", "endpoint_url", endpoint], **quiet)
    else:
        subprocess.run([exe, "remote", "add", "-d", "store", str(base / "remote")], **quiet)

    def step(label: str, *args: str, cwd: Path = proj) -> None:
        print(f"bench: {label}", file=sys.stderr)
        rows.append((label, *measure([exe, "-q", *args], cwd, env)))

    step("add (cold)", "add", "ds")
    step("status, nothing changed", "status")
    step("add again, nothing changed", "add", "ds")
    step("push", "push")
    step("push again, nothing new", "push")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "ds")
    generate(proj / "ds", 1000, kb, seed=99, start=n, only_class=7)
    step("add +1,000 files in one folder", "add", "ds")
    step("push +1,000 files", "push")
    step("status --remote", "status", "--remote")
    git(proj, "commit", "-qam", "ds +1000")
    clone = base / "clone"
    git(base, "clone", "-q", str(proj), str(clone))
    # The floor again, next to the pull it is compared with (this VM's page costs drift)
    rows.append(("cp -a of the tree again (write floor)", *measure(["cp", "-a", str(src), str(base / "floor")],
                                                                   base, env)))
    retire(base / "floor")
    step("pull into a fresh clone", "pull", cwd=clone)
    step("status in the clone", "status", cwd=clone)
    # get and list: a consumer whose Git mirror of the registry is there (as after any earlier
    # command) and whose user cache holds no data; each three times, each with a fresh user cache
    # (the Git mirror copied in, untimed), the median reported: after a pull of gigabytes the first
    # run also reads fastreg's own modules back from disk.
    out = base / "out"
    out.mkdir()
    warm = base / "xdg-warm"
    subprocess.run([exe, "list", str(proj)], cwd=out, env={**env, "XDG_CACHE_HOME": str(warm)}, check=True,
                   stdout=subprocess.DEVNULL)
    for label, args in (("get one file", ["get", str(proj), "ds/train/n00000500/img_00000500.jpg"]),
                        ("list one folder", ["list", str(proj), "ds/train/n00000500"])):
        runs = []
        for i in range(3):
            xdg = base / f"xdg-{label.split()[0]}-{i}"
            shutil.copytree(warm / "fastreg" / "registries", xdg / "fastreg" / "registries", symlinks=True)
            where = out / f"{label.split()[0]}-{i}"
            where.mkdir()
            print(f"bench: {label} ({i + 1}/3)", file=sys.stderr)
            runs.append(measure([exe, "-q", *args], where, {**env, "XDG_CACHE_HOME": str(xdg)}))
        runs.sort()
        rows.append((f"{label} (median of 3, no data cached)", *runs[1]))
    return rows


def dvc_side_by_side(n: int, kb: float, env: dict[str, str]) -> list[tuple[str, float, float, float, float]]:
    from bench.tools import ensure_dvc

    dvc = str(ensure_dvc())
    exe = str(Path(sys.executable).with_name("fastreg"))
    base = WORK / f"scale-dvc-{n}"
    retire(base)
    src = base / "src"
    generate(src / "ds", n, kb)
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for tool, cmd in (("fastreg", exe), ("dvc", dvc)):
        proj = base / f"proj-{tool}"
        subprocess.run(["cp", "-a", str(src), str(proj)], check=True)
        git(proj, "init", "-q", "-b", "main")
        git(proj, "config", "user.email", "b@x")
        git(proj, "config", "user.name", "b")
        quiet = {"check": True, "env": env, "stdout": subprocess.DEVNULL}
        subprocess.run([cmd, "init", "-q"], cwd=proj, **quiet)
        subprocess.run([cmd, "remote", "add", "-d", "store", str(base / f"remote-{tool}")], cwd=proj, **quiet)
        if tool == "dvc":
            subprocess.run([cmd, "config", "core.autostage", "false"], cwd=proj, **quiet)
    empty()
    for label, args in (("add", ["add", "-q", "ds"]), ("status", ["status", "-q"]), ("push", ["push", "-q"])):
        for tool, cmd in (("fastreg", exe), ("dvc", dvc)):
            print(f"bench: {tool} {label}", file=sys.stderr)
            proj = base / f"proj-{tool}"
            rows.setdefault(label, {})[tool] = measure_rc_ok([cmd, *args], proj, env)
    for tool, cmd in (("fastreg", exe), ("dvc", dvc)):
        proj = base / f"proj-{tool}"
        git(proj, "add", "-A")
        git(proj, "commit", "-qm", "ds")
        clone = base / f"clone-{tool}"
        git(base, "clone", "-q", str(proj), str(clone))
        print(f"bench: {tool} pull", file=sys.stderr)
        rows.setdefault("pull", {})[tool] = measure([cmd, "pull", "-q"], clone, env)
    return [(label, *r["fastreg"], *r["dvc"]) for label, r in rows.items()]


def measure_rc_ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """As measure, for commands whose exit code is an answer (dvc status -q exits 1 on changes)."""
    try:
        return measure(cmd, cwd, env)
    except SystemExit:
        if cmd[1:3] == ["status", "-q"]:
            return 0.0, 0.0
        raise


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--kb", type=float, default=4)
    ap.add_argument("--dvc", action="store_true", help="also DVC and fastreg side by side (local remotes)")
    ap.add_argument("--local", action="store_true", help="a local-directory remote instead of SeaweedFS")
    a = ap.parse_args()
    from bench.tools import ensure_bytecode
    from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

    ensure_bytecode()

    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "XDG_CACHE_HOME": str(WORK / "xdg-scale")}
    retire(WORK / "xdg-scale")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"## Scale: {a.files:,} files of ~{a.kb:g} KiB in {CLASSES:,} folders\n")
    print(f"Command: `python bench/scale.py --files {a.files} --kb {a.kb:g}{' --dvc' if a.dvc else ''}"
          f"{' --local' if a.local else ''}` ({started}; {os.cpu_count()} cores).\n")
    server = None if a.local else start_seaweed()
    try:
        endpoint = bucket = None
        if server is not None:
            bucket = f"scale-{a.files}"
            make_bucket(server.endpoint, bucket)
            endpoint = server.endpoint
        rows = fastreg_run(a.files, a.kb, env, endpoint, bucket)
    finally:
        if server is not None:
            server.stop()
    print(f"fastreg, remote {'SeaweedFS S3' if server is not None else 'local directory'}:\n")
    print("| step | seconds | peak RSS (MiB) |\n|---|---:|---:|")
    for label, sec, mib in rows:
        print(f"| {label} | {sec:.2f} | {mib:.0f} |")
    if a.dvc:
        print("\nSide by side with DVC (local-directory remotes, same tree, same run):\n")
        print("| step | fastreg (s) | fastreg RSS (MiB) | DVC (s) | DVC RSS (MiB) | DVC / fastreg |\n"
              "|---|---:|---:|---:|---:|---:|")
        for label, fs, fm, ds, dm in dvc_side_by_side(a.files, a.kb, env):
            ratio = f"**{ds / fs:.1f}×**" if fs and ds else "-"
            print(f"| {label} | {fs:.2f} | {fm:.0f} | {ds:.2f} | {dm:.0f} | {ratio} |")
    empty(pause=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Side-by-side benchmark: fastreg vs DVC (and the pyfastcdc chunker) on the same data, same run.

    .venv/bin/python bench/run.py [--files 10000] [--mean-kb 100] [--buffer-mb 1024] [--rss-files 10000,100000]
                                  [--skip-rss] [--out bench/RESULTS.md]

What it measures (all figures are wall-clock, best or median of repeated runs as labelled):
1. chunk+hash throughput from memory on one seeded random buffer: fastreg's native core (cut
   points + XXH3-128 of every chunk and of the whole buffer) on 1 core and on all cores, vs
   hashlib.md5 (what DVC computes) and vs pyfastcdc (+ xxhash per chunk) on the same buffer.
2. `add` of an image-like tree (--files, lognormal sizes around --mean-kb), cold (empty cache),
   default cache type and hardlink; then `status` and `add` again with nothing changed.
   DVC gets the same data (a separate copy, same bytes and mtimes) in its own Git repo.
3. peak RSS of a cold `add` at two file counts of small files (per-file growth).
DVC is installed by this script into bench/work/dvc-venv (pip install dvc); pyfastcdc into the
current interpreter if it is missing.  Nothing here talks to the network except pip.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.gen import images, randbytes  # noqa: E402
from bench.tools import (  # noqa: E402
    WORK,
    ensure_bytecode,
    ensure_dvc,
    ensure_pyfastcdc,
    fastreg_cmd,
    git_project,
    peak_rss_kb,
    sh,
)
from bench.trash import empty, retire  # noqa: E402


# -- 1. throughput ---------------------------------------------------------------------------
def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def throughput(buffer_mb: int) -> list[tuple[str, float]]:
    import xxhash
    from pyfastcdc.cy import FastCDC

    from fastreg.chunking import default_chunker

    size = buffer_mb << 20
    buf = randbytes(42, size)
    gb = size / 1e9
    ch = default_chunker()
    fc = FastCDC(avg_size=65536)  # its defaults: min avg/4, max avg*4, normalized level 1
    rows = []
    rows.append(("fastreg cut points only (1 core)", gb / best_of(lambda: ch.cut_points(buf))))
    rows.append(("fastreg chunk+hash: chunk digests + file digest (1 core)",
                 gb / best_of(lambda: ch.digest_buffer(buf))))
    cores = os.cpu_count() or 1
    halves = [memoryview(buf)[i * size // cores : (i + 1) * size // cores] for i in range(cores)]

    def parallel() -> None:
        ts = [threading.Thread(target=ch.digest_buffer, args=(h,)) for h in halves]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    rows.append((f"fastreg chunk+hash ({cores} cores, {cores} threads)", gb / best_of(parallel)))
    rows.append(("pyfastcdc 0.3 cut points only (1 core)", gb / best_of(lambda: sum(1 for _ in fc.cut_buf(buf)))))
    rows.append(("pyfastcdc + xxh3-128 per chunk (1 core)",
                 gb / best_of(lambda: [xxhash.xxh3_128_digest(c.data) for c in fc.cut_buf(buf)])))
    rows.append(("pyfastcdc + xxh3-128 per chunk + file digest (1 core)",
                 gb / best_of(lambda: ([xxhash.xxh3_128_digest(c.data) for c in fc.cut_buf(buf)],
                                       xxhash.xxh3_128_digest(buf)))))
    rows.append(("hashlib.md5 of the buffer (DVC's hash, 1 core)", gb / best_of(lambda: hashlib.md5(buf).digest(), 2)))
    return rows


def edit_locality() -> tuple[int, int]:
    """Chunks that change after a 1 MiB overwrite in the middle of a 512 MiB file."""
    from fastreg.chunking import default_chunker, iter_chunks

    ch = default_chunker()
    data = bytearray(randbytes(3, 512 << 20))
    d1, b1 = ch.digest_buffer(data)
    data[256 << 20 : 257 << 20] = randbytes(4, 1 << 20)
    d2, b2 = ch.digest_buffer(data)
    before = {d for d, _ in iter_chunks(b1, d1, len(data))}
    after = iter_chunks(b2, d2, len(data))
    new = [n for d, n in after if d not in before]
    return len(new), sum(new)


# -- 2. add / status -------------------------------------------------------------------------
def _prepare(
    tool: str, cache_type: str | None, src: Path, dvc: Path, env: dict[str, str]
) -> tuple[Path, list[str], list[str]]:
    fr = fastreg_cmd()
    proj = WORK / f"{tool}-{cache_type or 'default'}"
    git_project(proj)
    subprocess.run(["cp", "-a", str(src), str(proj / "data")], check=True)
    if tool == "fastreg":
        sh([*fr, "init"], proj)
        if cache_type:
            (proj / ".fastreg" / "config").write_text(f'[cache]\ntype = "{cache_type}"\n')
        return proj, [*fr, "add", "data"], [*fr, "status"]
    sh([str(dvc), "init", "-q"], proj, env)
    sh([str(dvc), "config", "core.autostage", "false"], proj, env)
    if cache_type:
        sh([str(dvc), "config", "cache.type", cache_type], proj, env)
    return proj, [str(dvc), "add", "-q", "data"], [str(dvc), "status", "-q"]


def _settle() -> None:
    """Flush dirty pages and let writeback finish, so one tool's writes do not slow the next."""
    subprocess.run(["sync"], check=True)
    time.sleep(2)


def workflow(src: Path, dvc: Path, repeat: int, rounds: int) -> dict[str, float]:
    """Cold adds in `rounds` rounds, the order of the tools alternating between rounds (this VM's
    write speed drifts by 2x and more over a run); each figure is the median over rounds."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    samples: dict[str, list[float]] = {}
    for r in range(rounds):
        # Reference floor for any copy-based cache: writing the same tree once (cp -a).
        floor = WORK / "cp-floor"
        _settle()
        samples.setdefault("cp-a", []).append(sh(["cp", "-a", str(src), str(floor)], WORK))
        retire(floor)
        for cache_type in (None, "hardlink"):
            tools = ("fastreg", "dvc") if r % 2 == 0 else ("dvc", "fastreg")
            for tool in tools:
                proj, cmd_add, cmd_status = _prepare(tool, cache_type, src, dvc, env)
                _settle()
                key = f"{tool}/{cache_type or 'default'}"
                samples.setdefault(f"{key}/add-cold", []).append(sh(cmd_add, proj, env))
                if cache_type is None and r == 0:
                    # status/add-again with nothing changed: median of `repeat` runs after a warm-up
                    sh(cmd_status, proj, env)
                    samples[f"{key}/status"] = [sh(cmd_status, proj, env) for _ in range(repeat)]
                    samples[f"{key}/add-again"] = [sh(cmd_add, proj, env) for _ in range(repeat)]
                retire(proj)
    empty()
    return {k: statistics.median(v) for k, v in samples.items()}


def rss(counts: list[int], dvc: Path, kb: float = 1.0) -> list[tuple[int, float, int, float, int, int, int]]:
    """Peak RSS of a cold add (fastreg and DVC), and of fastreg push and pull (local remote), with
    files of about `kb` KB."""
    fr = fastreg_cmd()
    rows = []
    for n in counts:
        src = WORK / (f"small-{n}" if kb == 1.0 else f"small-{n}-{kb:g}kb")
        if not src.exists():
            images(src, n // 2, n - n // 2, 1, seed=5, mean_kb=kb)
        proj = WORK / "rss-fastreg"
        git_project(proj)
        os.rename(src, proj / "data")
        sh([*fr, "init"], proj)
        _settle()
        t_fr, kb_fr = peak_rss_kb([*fr, "add", "-q", "data"], proj)
        sh([*fr, "remote", "add", "-d", "store", str(WORK / "rss-remote")], proj)
        _, kb_push = peak_rss_kb([*fr, "push", "-q"], proj)
        subprocess.run(["git", "add", "-A"], cwd=proj, check=True, capture_output=True)
        subprocess.run(["git", "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"], cwd=proj, check=True)
        clone = WORK / "rss-clone"
        retire(clone)
        subprocess.run(["git", "clone", "-q", str(proj), str(clone)], check=True)
        _, kb_pull = peak_rss_kb([*fr, "pull", "-q"], clone)
        retire(clone)
        retire(WORK / "rss-remote")
        # DVC on the same tree (moved, not copied: fastreg's default copy mode leaves it as it was)
        proj2 = WORK / "rss-dvc"
        git_project(proj2)
        os.rename(proj / "data", proj2 / "data")
        sh([str(dvc), "init", "-q"], proj2)
        _settle()
        t_dvc, kb_dvc = peak_rss_kb([str(dvc), "add", "-q", "data"], proj2)
        retire(proj)
        retire(proj2)
        rows.append((n, t_fr, kb_fr, t_dvc, kb_dvc, kb_push, kb_pull))
    empty()
    return rows


# -- report ----------------------------------------------------------------------------------
def machine(dvc: Path) -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(WORK)], capture_output=True, text=True).stdout.strip()
    dvc_v = subprocess.run([str(dvc), "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {fs} filesystem, "
            f"Python {platform.python_version()}, DVC {dvc_v}, {time.strftime('%Y-%m-%d')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mean-kb", type=float, default=100.0)
    ap.add_argument("--buffer-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="cold-add rounds (tool order alternates)")
    ap.add_argument("--rss-files", default="10000,100000")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--rss-kb", type=float, default=1.0, help="mean file size of the RSS datasets (KB)")
    ap.add_argument("--skip-remote", action="store_true", help="skip push/pull (local remote and SeaweedFS)")
    ap.add_argument("--skip-s3", action="store_true", help="push/pull on the local remote only")
    ap.add_argument("--skip-registry", action="store_true", help="skip get/import/update/list (needs SeaweedFS)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    dvc = ensure_dvc()
    ensure_bytecode()
    ensure_pyfastcdc()
    command = "python bench/run.py " + " ".join(sys.argv[1:])

    print("bench: chunk+hash throughput", file=sys.stderr)
    tp = throughput(args.buffer_mb)
    changed, changed_bytes = edit_locality()

    print(f"bench: generating {args.files} images", file=sys.stderr)
    src = WORK / f"images-{args.files}"
    retire(src)
    empty()  # no deletion may fall inside a timed command (see bench/trash.py)
    total = images(src, args.files // 2, args.files - args.files // 2, 1, seed=7, mean_kb=args.mean_kb)
    print("bench: add/status fastreg vs dvc", file=sys.stderr)
    wf = workflow(src, dvc, args.repeat, args.rounds)
    rss_rows = [] if args.skip_rss else rss([int(x) for x in args.rss_files.split(",")], dvc, args.rss_kb)

    lines = ["# Benchmark results", "", f"Command: `{command}`", "", f"Machine: {machine(dvc)}", ""]
    lines += ["## Chunk + hash throughput from memory", "",
              f"One seeded random buffer of {args.buffer_mb} MiB; best of 5 (md5: best of 2). "
              "fastreg's figure includes the XXH3-128 of every chunk *and* of the whole buffer.", "",
              "| what | GB/s |", "|---|---:|"]
    lines += [f"| {name} | {v:.2f} |" for name, v in tp]
    byname = dict(tp)
    ours = byname["fastreg chunk+hash: chunk digests + file digest (1 core)"]
    peer = byname["pyfastcdc + xxh3-128 per chunk + file digest (1 core)"]
    md5 = byname["hashlib.md5 of the buffer (DVC's hash, 1 core)"]
    lines += ["", f"Ratio fastreg / pyfastcdc (same work: chunk digests + file digest): **{ours / peer:.2f}×**; "
              f"fastreg / md5: **{ours / md5:.1f}×**.",
              "", f"Edit locality: a 1 MiB overwrite in the middle of a 512 MiB file changes {changed} chunks "
              f"({changed_bytes / 2**20:.2f} MiB of new chunk data).", ""]
    n = args.files
    lines += [f"## `add` / `status`: {n:,} files, {total / 1e9:.2f} GB "
              f"(lognormal around {args.mean_kb:.0f} KB)", "",
              "Wall time of the whole command (process start to exit), same data, same run. "
              f"Cold = empty cache; median of {args.rounds} rounds, the order of the two tools alternating "
              "between rounds, `sync` and a 2 s pause before each. "
              f"status / add-again: median of {args.repeat} after one warm-up.", "",
              "| operation | fastreg (s) | DVC (s) | DVC / fastreg |", "|---|---:|---:|---:|"]
    for label, key in (("add, cold, default cache type (reflink→copy)", "default/add-cold"),
                       ("add, cold, cache.type = hardlink", "hardlink/add-cold"),
                       ("status, nothing changed", "default/status"),
                       ("add again, nothing changed", "default/add-again")):
        f, d = wf[f"fastreg/{key}"], wf[f"dvc/{key}"]
        lines.append(f"| {label} | {f:.3f} | {d:.3f} | **{d / f:.1f}×** |")
    lines += ["", f"Reference: `cp -a` of the same tree (the write that any copy-based cache must do) took "
              f"{wf['cp-a']:.3f} s (median of the rounds)."]
    if rss_rows:
        lines += ["", f"## Peak RSS with many small files (~{args.rss_kb:g} KB each)", "",
                  "| files | fastreg add (s) | fastreg add peak RSS (MiB) | DVC add (s) | DVC add peak RSS (MiB) "
                  "| fastreg push RSS (MiB) | fastreg pull RSS (MiB) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for cnt, tf, kf, td, kd, kpush, kpull in rss_rows:
            lines.append(f"| {cnt:,} | {tf:.2f} | {kf / 1024:.1f} | {td:.2f} | {kd / 1024:.1f} "
                         f"| {kpush / 1024:.1f} | {kpull / 1024:.1f} |")
        if len(rss_rows) >= 2:
            (n1, _, k1, _, d1, *_r1), (n2, _, k2, _, d2, *_r2) = rss_rows[0], rss_rows[-1]
            lines += ["", f"Growth per file between {n1:,} and {n2:,} files: fastreg "
                      f"**{(k2 - k1) * 1024 / (n2 - n1):.0f} bytes/file**, "
                      f"DVC {(d2 - d1) * 1024 / (n2 - n1):.0f} bytes/file."]
    if not args.skip_remote:
        from bench import remote as remote_bench

        lines += remote_bench.main(src, dvc, fastreg_cmd(), with_s3=not args.skip_s3)
    if not args.skip_registry and not args.skip_s3:
        from bench import registry as registry_bench

        lines += registry_bench.main(src, dvc, fastreg_cmd())
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

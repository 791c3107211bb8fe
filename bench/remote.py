"""Push/pull side by side: fastreg vs DVC (`dvc[s3]`) vs rclone, on a local-directory remote and
on a real SeaweedFS (S3) on 127.0.0.1. Called by bench/run.py (or alone: python bench/remote.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.gen import edit, images, large  # noqa: E402
from bench.trash import empty, retire  # noqa: E402


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed in {cwd}:\n{p.stdout}\n{p.stderr}")
    return dt, p.stdout + p.stderr


def settle() -> None:
    subprocess.run(["sync"], check=True)
    time.sleep(1)


def pushed_bytes(out: str) -> tuple[float, int]:
    m = re.search(r"Pushed ([\d.]+) (B|KiB|MiB|GiB) in \d+ packs? to \S+ \((\d+) requests?\)", out)
    if not m:
        m2 = re.search(r"\((\d+) requests?\)", out)
        return 0.0, int(m2.group(1)) if m2 else -1
    n = float(m.group(1)) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]
    return n, int(m.group(3))


class Tools:
    def __init__(self, dvc: Path, fastreg: list[str], env: dict[str, str]) -> None:
        self.dvc = str(dvc)
        self.fr = fastreg
        self.env = env


def _git_init(path: Path) -> None:
    retire(path)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.email", "b@fastreg.invalid"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.name", "bench"], cwd=path, check=True)


def _commit(path: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=path, check=True)


def _clone(src: Path, dst: Path) -> None:
    retire(dst)
    subprocess.run(["git", "clone", "-q", str(src), str(dst)], check=True)


def run_pair(kind: str, src: Path, t: Tools, url_fr: str, url_dvc: str, endpoint: str | None) -> dict[str, float]:
    """Push then pull (fresh clone, empty cache) with both tools; then incremental push."""
    res: dict[str, float] = {}
    env = t.env
    # fastreg
    proj = WORK / f"rb-fastreg-{kind}"
    _git_init(proj)
    settle()
    res["cp-a/1"], _ = sh(["cp", "-a", str(src), str(proj / "data")], WORK)  # the write floor, for reference
    sh([*t.fr, "init"], proj, env)
    sh([*t.fr, "add", "-q", "data"], proj, env)
    sh([*t.fr, "remote", "add", "-d", "store", url_fr], proj, env)
    if endpoint:
        sh([*t.fr, "remote", "modify", "store", "endpoint_url", endpoint], proj, env)
    _commit(proj)
    settle()
    res["fastreg/push"], out = sh([*t.fr, "push"], proj, env)
    res["fastreg/push-bytes"], res["fastreg/push-requests"] = pushed_bytes(out)
    res["fastreg/push-again"], out = sh([*t.fr, "push"], proj, env)
    res["fastreg/push-again-bytes"], res["fastreg/push-again-requests"] = pushed_bytes(out)
    clone = WORK / f"rb-fastreg-{kind}-clone"
    _clone(proj, clone)
    settle()
    res["fastreg/pull"], _ = sh([*t.fr, "pull", "-q"], clone, env)
    # incremental: +1,000 files
    new_bytes = images(proj / "data", 500, 500, 50_000, seed=11, mean_kb=100)
    sh([*t.fr, "add", "-q", "data"], proj, env)
    res["fastreg/push-incr"], out = sh([*t.fr, "push"], proj, env)
    res["fastreg/push-incr-bytes"], _ = pushed_bytes(out)
    res["new-bytes"] = new_bytes
    # DVC
    dproj = WORK / f"rb-dvc-{kind}"
    _git_init(dproj)
    settle()
    res["cp-a/2"], _ = sh(["cp", "-a", str(src), str(dproj / "data")], WORK)
    sh([t.dvc, "init", "-q"], dproj, env)
    sh([t.dvc, "add", "-q", "data"], dproj, env)
    sh([t.dvc, "remote", "add", "-d", "store", url_dvc], dproj, env)
    if endpoint:
        sh([t.dvc, "remote", "modify", "store", "endpointurl", endpoint], dproj, env)
    _commit(dproj)
    settle()
    res["dvc/push"], _ = sh([t.dvc, "push", "-q"], dproj, env)
    res["dvc/push-again"], _ = sh([t.dvc, "push", "-q"], dproj, env)
    dclone = WORK / f"rb-dvc-{kind}-clone"
    _clone(dproj, dclone)
    settle()
    res["dvc/pull"], _ = sh([t.dvc, "pull", "-q"], dclone, env)
    images(dproj / "data", 500, 500, 50_000, seed=11, mean_kb=100)
    sh([t.dvc, "add", "-q", "data"], dproj, env)
    res["dvc/push-incr"], _ = sh([t.dvc, "push", "-q"], dproj, env)
    for p in (proj, clone, dproj, dclone):
        retire(p)
    return res


def big_file_edit(t: Tools, remote: Path) -> dict[str, float]:
    """1 MiB overwrite inside a 512 MiB file: what each tool uploads afterwards."""
    res: dict[str, float] = {}
    env = t.env
    for tool in ("fastreg", "dvc"):
        proj = WORK / f"rb-edit-{tool}"
        _git_init(proj)
        large(proj / "model.bin", 512 << 20, seed=3)
        r = remote / f"edit-{tool}"
        if tool == "fastreg":
            sh([*t.fr, "init"], proj, env)
            sh([*t.fr, "add", "-q", "model.bin"], proj, env)
            sh([*t.fr, "remote", "add", "-d", "store", str(r)], proj, env)
            sh([*t.fr, "push"], proj, env)
            edit(proj / "model.bin", 256 << 20, 1 << 20, seed=5)
            sh([*t.fr, "add", "-q", "model.bin"], proj, env)
            res["fastreg/edit-push"], out = sh([*t.fr, "push"], proj, env)
            res["fastreg/edit-bytes"], _ = pushed_bytes(out)
        else:
            sh([t.dvc, "init", "-q"], proj, env)
            sh([t.dvc, "add", "-q", "model.bin"], proj, env)
            sh([t.dvc, "remote", "add", "-d", "store", str(r)], proj, env)
            sh([t.dvc, "push", "-q"], proj, env)
            before = sum(f.stat().st_size for f in r.rglob("*") if f.is_file())
            edit(proj / "model.bin", 256 << 20, 1 << 20, seed=5)
            sh([t.dvc, "add", "-q", "model.bin"], proj, env)
            res["dvc/edit-push"], _ = sh([t.dvc, "push", "-q"], proj, env)
            res["dvc/edit-bytes"] = sum(f.stat().st_size for f in r.rglob("*") if f.is_file()) - before
        retire(proj)
    return res


def rclone_s3(src: Path, endpoint: str, bucket: str, env: dict[str, str]) -> dict[str, float]:
    """rclone copy --transfers 32 of the raw files, and of two 512 MB objects (few requests)."""
    res: dict[str, float] = {}
    # AWS_CA_BUNDLE (set on some machines) breaks rclone's plain-HTTP S3 client; the endpoint is loopback HTTP.
    renv = {
        **{k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"},
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Other",
        "RCLONE_CONFIG_S3_ENDPOINT": endpoint,
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_S3_REGION": "us-east-1",
    }
    settle()
    res["rclone/files-up"], _ = sh(["rclone", "copy", "--transfers", "32", str(src), f"s3:{bucket}/files"], WORK, renv)
    down = WORK / "rclone-down"
    retire(down)
    settle()
    res["rclone/files-down"], _ = sh(
        ["rclone", "copy", "--transfers", "32", f"s3:{bucket}/files", str(down)], WORK, renv
    )
    retire(down)
    bigdir = WORK / "rclone-big"
    bigdir.mkdir(exist_ok=True)
    total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    for i in range(2):
        large(bigdir / f"part{i}", total // 2, seed=40 + i)
    settle()
    res["rclone/big-up"], _ = sh(
        ["rclone", "copy", "--transfers", "32", "--s3-upload-concurrency", "8", str(bigdir), f"s3:{bucket}/big"],
        WORK,
        renv,
    )
    retire(bigdir)
    settle()
    res["rclone/big-down"], _ = sh(
        ["rclone", "copy", "--transfers", "32", "--multi-thread-streams", "8", f"s3:{bucket}/big", str(down)],
        WORK,
        renv,
    )
    retire(down)
    return res


def report(
    local: dict[str, float],
    s3: dict[str, float] | None,
    rc: dict[str, float] | None,
    edits: dict[str, float],
    nfiles: int,
    total: int,
) -> list[str]:
    lines = [
        "",
        f"## push / pull: {nfiles:,} files, {total / 1e9:.2f} GB",
        "",
        "Wall time of the whole command; pull = fresh `git clone`, empty cache, fetch + checkout. "
        "Same data, same run; DVC is `dvc[s3]` in its own virtualenv.",
        "",
        "| remote | operation | fastreg (s) | DVC (s) | DVC / fastreg |",
        "|---|---|---:|---:|---:|",
    ]
    for name, r in (("local dir", local), ("SeaweedFS S3", s3)):
        if r is None:
            continue
        for label, key in (
            ("push", "push"),
            ("pull", "pull"),
            ("push again, nothing new", "push-again"),
            ("push after +1,000 files", "push-incr"),
        ):
            f, d = r[f"fastreg/{key}"], r[f"dvc/{key}"]
            lines.append(f"| {name} | {label} | {f:.2f} | {d:.2f} | **{d / f:.1f}×** |")
    if rc is not None and s3 is not None:
        lines += [
            "",
            "rclone on the same SeaweedFS in the same run (`--transfers 32`):",
            "",
            "| what | up (s) | down (s) |",
            "|---|---:|---:|",
            f"| the {nfiles:,} files, one object each | {rc['rclone/files-up']:.2f} | {rc['rclone/files-down']:.2f} |",
            f"| the same bytes as two large objects | {rc['rclone/big-up']:.2f} | {rc['rclone/big-down']:.2f} |",
            f"| fastreg push / pull (packs) | {s3['fastreg/push']:.2f} | {s3['fastreg/pull']:.2f} |",
            "",
            f"fastreg push / rclone large-object upload: **{s3['fastreg/push'] / rc['rclone/big-up']:.2f}×** "
            f"the time; fastreg pull / rclone large-object download: "
            f"**{s3['fastreg/pull'] / rc['rclone/big-down']:.2f}×**.",
        ]
    cps = [r[k] for r in (local, s3) if r is not None for k in ("cp-a/1", "cp-a/2")]
    lines += [
        "",
        f"Write floor: `cp -a` of the same files took {min(cps):.2f}-{max(cps):.2f} s in this run (timed when each "
        "project is set up). A push to a local directory writes the bytes once; a pull in copy mode twice (cache "
        "and workspace), for DVC as for fastreg.",
    ]
    ref = s3 or local
    lines += [
        "",
        "Transfer volumes (fastreg's own counters):",
        "",
        f"- first push: {ref['fastreg/push-bytes'] / 1e6:.1f} MB in {ref['fastreg/push-requests']:.0f} requests",
        f"- second push, nothing new: {ref['fastreg/push-again-bytes']:.0f} bytes uploaded, "
        f"{ref['fastreg/push-again-requests']:.0f} request(s)",
        f"- push after +1,000 files: {ref['fastreg/push-incr-bytes'] / 1e6:.1f} MB uploaded for "
        f"{ref['new-bytes'] / 1e6:.1f} MB of new files (**{ref['fastreg/push-incr-bytes'] / ref['new-bytes']:.3f}×**)",
        f"- 1 MiB overwrite inside a 512 MiB file, then push: fastreg uploaded "
        f"**{edits['fastreg/edit-bytes'] / 2**20:.2f} MiB** in {edits['fastreg/edit-push']:.2f} s; "
        f"DVC uploaded {edits['dvc/edit-bytes'] / 2**20:.0f} MiB in {edits['dvc/edit-push']:.2f} s",
    ]
    return lines


def main(src: Path, dvc: Path, fastreg: list[str], with_s3: bool = True) -> list[str]:
    src = src.resolve()
    # DVC's per-repository indexes go to a site cache of this run (not /var/tmp/dvc, where an earlier
    # run's index of a same-named remote could stand in for the new, empty bucket).
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(WORK / "dvc-site")}
    t = Tools(dvc, fastreg, env)
    remotes = WORK / "remotes"
    retire(remotes)
    retire(WORK / "dvc-site")
    empty()  # leftovers of an earlier run: deleted before anything is timed
    remotes.mkdir(parents=True)
    nfiles = sum(1 for f in src.rglob("*") if f.is_file())
    total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    print("bench: push/pull, local-directory remote", file=sys.stderr)
    local = run_pair("local", src, t, str(remotes / "fastreg"), str(remotes / "dvc"), None)
    empty()  # the local pair's 4 GB, before the S3 pair is timed
    s3 = rc = None
    if with_s3:
        from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        t.env = env
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        print("bench: starting SeaweedFS", file=sys.stderr)
        server = start_seaweed()
        try:
            for b in ("bench-fastreg", "bench-dvc", "bench-rclone"):
                make_bucket(server.endpoint, b)
            print("bench: push/pull, SeaweedFS", file=sys.stderr)
            s3 = run_pair("s3", src, t, "s3://bench-fastreg/registry", "s3://bench-dvc/registry", server.endpoint)
            if shutil.which("rclone"):
                print("bench: rclone", file=sys.stderr)
                rc = rclone_s3(src, server.endpoint, "bench-rclone", env)
        finally:
            server.stop()
    print("bench: 1 MiB edit inside a 512 MiB file", file=sys.stderr)
    edits = big_file_edit(t, remotes)
    retire(remotes)
    empty(pause=False)
    return report(local, s3, rc, edits, nfiles, total)


if __name__ == "__main__":
    from bench.tools import ensure_dvc, fastreg_cmd

    src = WORK / "images-10000"
    if not src.exists():
        images(src, 5000, 5000, 1, seed=7, mean_kb=100)
    print("\n".join(main(src, ensure_dvc(), fastreg_cmd())))

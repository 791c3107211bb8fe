"""A DVC registry consumed by both tools: one DVC project of 10k images (v1, then v2 with +1,000),
its data on SeaweedFS, built by DVC; then, side by side in one run and from cold data caches,
`fastreg get` vs `dvc get` of the dataset, `fastreg list -R` vs `dvc list -R`, import of v1 in a
consumer project, a teammate's pull of that import from a fresh clone, and update to v2. Then
`fastreg migrate` of a 100k-file DVC project (bytes from its workspace, each md5 verified) against
`fastreg add` of the same tree in the same folder, with the peak RSS of each.

    python bench/dvc_source.py            # prints a RESULTS.md section
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.gen import images  # noqa: E402
from bench.registry import build_registry  # noqa: E402
from bench.tools import git_project, peak_rss_kb, sh  # noqa: E402
from bench.trash import empty, retire  # noqa: E402

DATA = "use-cases/cats-dogs"


def _cold() -> None:
    """Empty data caches for both tools: fastreg's user cache and its DVC manifests, DVC's site
    cache. fastreg keeps its Git mirror of the registry (one fetch, then reused: that is its
    design); DVC clones the registry on every command anyway."""
    for p in ("fastreg/cache", "fastreg/dvc-manifests", "dvc"):
        retire(WORK / "xdg" / p)


def _project(path: Path, tool: list[str], env: dict[str, str]) -> None:
    path.mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "b@x"], ["config", "user.name", "b"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    sh([*tool, "init", "-q"], path, env)


def get_floor(endpoint: str, bucket: str) -> tuple[int, float]:
    """(objects, seconds) to GET every object of the DVC remote once, 16 at once, bytes
    discarded: what any reader of DVC's one-object-per-file layout pays this server."""
    from fastreg.repo import remotes
    from fastreg.transfer import whole
    from tests.servers import bucket_keys

    keys = [k for k in bucket_keys(endpoint, bucket) if not k.endswith(".dir")]
    remote = remotes.Remote("floor", f"s3://{bucket}", {"endpoint_url": endpoint, "read_only": True})
    t = time.perf_counter()
    whole.get_many(lambda: remotes.open_store(remote, WORK, 16), [(k, [k]) for k in keys], 16,
                   lambda k, data: len(data), lambda *a: None, KeyError)
    return len(keys), time.perf_counter() - t


def consume(name: str, tool: list[str], url: str, env: dict[str, str], repeat: int) -> dict[str, float]:
    out = WORK / f"dvcsrc-{name}"
    retire(out)
    out.mkdir()
    res: dict[str, list[float]] = {}

    def timed(key: str, args: list[str], cwd: Path, output: Path | None = None, cold: bool = True) -> None:
        if cold:
            _cold()
        if output is not None:
            retire(output)
        res.setdefault(key, []).append(sh([*tool, *args], cwd, env))

    sh([*tool, "list", url], out, env)  # fastreg: its registry mirror, fetched once
    for _ in range(repeat):
        timed("get-all", ["get", url, DATA, "-o", "all"], out, out / "all")
        timed("list", ["list", "-R", url], out)
    proj = out / "project"
    _project(proj, tool, env)
    meta = "cd.fastreg" if name == "fastreg" else "cd.dvc"
    timed("import-v1", ["import", url, DATA, "--rev", "cats-dogs-v1", "-o", "cd"], proj)
    subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
    subprocess.run(["git", "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "import"], cwd=proj,
                   check=True)
    mate = out / "mate"
    subprocess.run(["git", "clone", "-q", str(proj), str(mate)], check=True)
    timed("pull", ["pull"], mate)
    timed("update-v2", ["update", meta, "--rev", "cats-dogs-v2"], proj, cold=False)
    got = sum(1 for _ in (mate / "cd").rglob("*.jpg"))
    if got != 10_000:
        raise SystemExit(f"bench: {name}'s teammate pull gave {got} images, not 10,000")
    retire(out)
    return {k: statistics.median(v) for k, v in res.items()}


def _reset(proj: Path) -> None:
    """The DVC project as `dvc add` left it: its .dvc files back, fastreg's files moved away."""
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=proj, check=True)
    for p in [proj / ".fastreg", proj / ".gitattributes", *proj.glob("*.fastreg")]:
        retire(p)


def migrate_vs_add(dvc: Path, fastreg: list[str], files: int, kb: float, rounds: int) -> dict[str, float]:
    """Median seconds and peak RSS of `fastreg migrate` and of `fastreg add data` on the same
    tree of the same DVC project, alternating, from the same page-cache state."""
    proj = WORK / "migrate-project"
    retire(proj)
    git_project(proj)
    images(proj / "data", files // 2, files - files // 2, 1, seed=11, mean_kb=kb)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(WORK / "xdg" / "dvc" / "site")}
    print(f"bench: dvc add of {files:,} files", file=sys.stderr)
    sh([str(dvc), "init", "-q"], proj, env)
    sh([str(dvc), "add", "-q", "data"], proj, env)
    subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
    subprocess.run(["git", "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "dvc"], cwd=proj, check=True)
    times: dict[str, list[float]] = {"migrate": [], "add": []}
    peaks: dict[str, int] = {"migrate": 0, "add": 0}
    for r in range(rounds):
        for what in (("migrate", "add") if r % 2 == 0 else ("add", "migrate")):
            _reset(proj)
            subprocess.run(["sync"], check=True)
            if what == "add":
                sh([*fastreg, "init", "-q"], proj)
                t, peak = peak_rss_kb([*fastreg, "add", "-q", "data"], proj)
            else:
                t, peak = peak_rss_kb([*fastreg, "migrate", "-q"], proj)
                if not (proj / "data.fastreg").exists():
                    raise SystemExit("bench: migrate wrote no data.fastreg")
            times[what].append(t)
            peaks[what] = max(peaks[what], peak)
    digests = []
    for what in ("migrate", "add"):  # both record the same tree
        _reset(proj)
        if what == "add":
            sh([*fastreg, "init", "-q"], proj)
            sh([*fastreg, "add", "-q", "data"], proj)
        else:
            sh([*fastreg, "migrate", "-q"], proj)
        digests.append([line for line in (proj / "data.fastreg").read_text().splitlines() if line.startswith("digest")])
    if digests[0] != digests[1]:
        raise SystemExit(f"bench: migrate and add recorded different trees: {digests}")
    retire(proj)
    return {"migrate": statistics.median(times["migrate"]), "add": statistics.median(times["add"]),
            "migrate-rss": peaks["migrate"] / 1024, "add-rss": peaks["add"] / 1024}


def main(src: Path, dvc: Path, fastreg: list[str], repeat: int = 3, migrate_files: int = 100_000) -> list[str]:
    from tests.servers import ACCESS_KEY, SECRET_KEY, free_ports, make_bucket, start_gateway, start_seaweed

    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "XDG_CACHE_HOME": str(WORK / "xdg"),
           "DVC_SITE_CACHE_DIR": str(WORK / "xdg" / "dvc" / "site")}
    server = start_seaweed()
    [port] = free_ports(1)
    gateway = start_gateway(server, port)
    res: dict[str, dict[str, float]] = {}
    try:
        make_bucket(server.endpoint, "dvc-source")
        reg = WORK / "dvc-source-registry"
        print("bench: building the DVC registry", file=sys.stderr)
        build_registry("dvc", reg, src.resolve(), "s3://dvc-source/store", f"http://127.0.0.1:{port}",
                       {"dvc": [str(dvc)]}, env)
        floor = get_floor(server.endpoint, "dvc-source")
        empty()
        for name, tool in (("fastreg", fastreg), ("dvc", [str(dvc)])):
            print(f"bench: {name} reads the DVC registry", file=sys.stderr)
            res[name] = consume(name, tool, str(reg), env, repeat)
            empty()
    finally:
        gateway.stop()
        server.stop()
        empty(pause=False)
    lines = ["", "## A DVC registry read by fastreg (10k images on SeaweedFS, built by DVC)", "",
             "One DVC 3 project (`dvc add` + `dvc push`, v1 then v2 with +1,000 images); both tools read it "
             "as it is. Wall time of each command from cold data caches (fastreg keeps its Git mirror of "
             f"the registry, as it does for its own registries); get and list: median of {repeat}.", "",
             "| operation | fastreg (s) | DVC (s) | DVC / fastreg |", "|---|---:|---:|---:|"]
    lines.insert(-2, f"GET floor: every object of the DVC remote ({floor[0]:,}) fetched once, 16 at once, bytes "
                 f"discarded (fastreg's S3 reader, same server): **{floor[1]:.2f} s**. fastreg's get of the "
                 "dataset is that plus verifying, converting and writing "
                 "every file twice (cache, output).")
    lines.insert(-2, "")
    for label, key in (("get the whole dataset (v2)", "get-all"), ("list -R", "list"),
                       ("import --rev v1", "import-v1"), ("teammate pull of the import (fresh clone)", "pull"),
                       ("update --rev v2 (+1,000 images)", "update-v2")):
        f, d = res["fastreg"][key], res["dvc"][key]
        lines.append(f"| {label} | {f:.2f} | {d:.2f} | **{d / f:.1f}×** |")
    m = migrate_vs_add(dvc, fastreg, migrate_files, 10, 4)
    empty(pause=False)
    lines += ["", f"`fastreg migrate` of a {migrate_files:,}-file DVC project (~10 KB files, `dvc add`ed; the bytes "
              "come from the workspace, each md5 verified) against `fastreg add` of the same tree in the same "
              "folder: median of 4 alternating runs, peak RSS the highest of them. Both record the same tree "
              "(checked).", "",
              "| command | seconds | peak RSS (MiB) |", "|---|---:|---:|",
              f"| fastreg migrate | {m['migrate']:.2f} | {m['migrate-rss']:.0f} |",
              f"| fastreg add | {m['add']:.2f} | {m['add-rss']:.0f} |",
              "", f"migrate / add: **{m['migrate'] / m['add']:.2f}×**."]
    return lines


if __name__ == "__main__":
    from bench.tools import ensure_bytecode, ensure_dvc, fastreg_cmd

    ensure_bytecode()
    src = WORK / "images-10000"
    if not src.exists():
        images(src, 5000, 5000, 1, seed=7, mean_kb=100)
    print("\n".join(main(src, ensure_dvc(), fastreg_cmd())))

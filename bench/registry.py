"""Registry consumption side by side: fastreg vs DVC on the same 10k-image registry on SeaweedFS,
through a counting proxy on 127.0.0.1 (bytes and requests each tool really moves):
get of one image (warm registry mirror), get of the whole dataset, import --rev v1, update --rev
v2 (+1,000 images), list -R."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.gen import images  # noqa: E402
from bench.tools import sh  # noqa: E402
from bench.trash import empty, retire  # noqa: E402


def build_registry(
    tool: str, path: Path, src: Path, url: str, endpoint: str, t: dict[str, list[str]], env: dict[str, str]
) -> None:
    retire(path)
    path.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "b@x"], ["config", "user.name", "b"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    data = path / "use-cases" / "cats-dogs"
    data.parent.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(src), str(data)], check=True)
    cmd = t[tool]
    if tool == "fastreg":
        sh([*cmd, "init", "-q"], path, env)
        sh([*cmd, "remote", "add", "-d", "store", url], path, env)
        sh([*cmd, "remote", "modify", "store", "endpoint_url", endpoint], path, env)
    else:
        sh([*cmd, "init", "-q"], path, env)
        sh([*cmd, "remote", "add", "-d", "store", url], path, env)
        sh([*cmd, "remote", "modify", "store", "endpointurl", endpoint], path, env)
        sh([*cmd, "config", "core.autostage", "false"], path, env)
    for version, extra in (("v1", None), ("v2", 1000)):
        if extra:
            images(data, extra // 2, extra // 2, 90_000, seed=13, mean_kb=100)
        sh([*cmd, "add", "-q", "use-cases/cats-dogs"], path, env)
        sh([*cmd, "push", "-q"], path, env)
        subprocess.run(["git", "add", "-A"], cwd=path, check=True)
        subprocess.run(["git", "commit", "-qm", version], cwd=path, check=True)
        subprocess.run(["git", "tag", f"cats-dogs-{version}"], cwd=path, check=True)
    # Consumers must go to the remote: DVC would otherwise read a local registry's own cache or
    # even its workspace copy of the data.
    retire(path / (".fastreg" if tool == "fastreg" else ".dvc") / "cache")
    retire(data)
    empty()  # no deletion may fall inside a timed command (see bench/trash.py)


def consume(tool: str, cmd: list[str], url: str, env: dict[str, str], counts: Counter[str] | None) -> dict[str, float]:
    """get one image, get all, import v1, update to v2, list -R: seconds each, or (with the
    counting proxy's counters) the bytes and requests each moved."""
    res: dict[str, float] = {}
    out = WORK / f"consume-{tool}"
    retire(WORK / "xdg")
    retire(out)
    out.mkdir()
    image = "use-cases/cats-dogs/data/train/cats/cat.0001.jpg"
    # warm the registry mirror (fastreg keeps one; DVC clones every time anyway)
    sh([*cmd, "list", url], out, env)

    def measured(name: str, args: list[str], cwd: Path, cold: bool = True, repeat: int = 1,
                 output: Path | None = None) -> None:
        """repeat: the timed pass reports the median of that many runs, each from the same cold
        state (output, if given, is moved away before each)."""
        times = []
        for _ in range(repeat if counts is None else 1):
            if cold:  # cold data caches for both tools (fastreg keeps its Git mirror: that is the point)
                retire(WORK / "xdg" / "fastreg" / "cache")
                retire(WORK / "xdg" / "dvc")
            if output is not None:
                retire(output)
            before = dict(counts or {})
            times.append(sh([*cmd, *args], cwd, env))
        if counts is None:
            res[f"{tool}/{name}"] = statistics.median(times)
        else:
            res[f"{tool}/{name}/bytes"] = counts["bytes_out"] - before.get("bytes_out", 0)
            res[f"{tool}/{name}/requests"] = counts["requests"] - before.get("requests", 0)

    measured("get-one", ["get", url, image, "-o", "one.jpg"], out, repeat=5, output=out / "one.jpg")
    measured("get-all", ["get", url, "use-cases/cats-dogs", "-o", "all"], out)
    proj = out / "project"
    proj.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    sh([*cmd, "init", "-q"], proj, env)
    measured("import-v1", ["import", url, "use-cases/cats-dogs", "--rev", "cats-dogs-v1", "-o", "cd"], proj)
    update = ["update", "cd.fastreg" if tool == "fastreg" else "cd.dvc", "--rev", "cats-dogs-v2"]
    measured("update-v2", update, proj, cold=False)  # the project cache keeps v1: only the new images travel
    measured("list", ["list", "-R", url], out, repeat=5)
    retire(out)
    return res


def main(src: Path, dvc: Path, fastreg: list[str]) -> list[str]:
    """Each registry's committed endpoint is one port. The timed pass reaches SeaweedFS there
    directly (a second, native S3 gateway of the same server on that port); the counting pass puts
    the counting proxy on it instead. A Python proxy in the timed path cost fastreg ~0.8 s of a
    3.3 s `get` of the whole dataset (CPU on the same two cores), so it only counts."""
    from tests.faultproxy import FaultProxy
    from tests.servers import ACCESS_KEY, SECRET_KEY, free_ports, make_bucket, start_gateway, start_seaweed

    src = src.resolve()
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "XDG_CACHE_HOME": str(WORK / "xdg"),
        # DVC keeps per-repository indexes in a site cache (/var/tmp/dvc by default): under xdg/dvc it
        # is cleared with DVC's other caches before each command, so each DVC run is as cold as its
        # fresh clone of the registry (without it a counting pass saw only what the timed pass missed).
        "DVC_SITE_CACHE_DIR": str(WORK / "xdg" / "dvc" / "site"),
    }
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    tools = {"fastreg": fastreg, "dvc": [str(dvc)]}
    res: dict[str, float] = {}
    server = start_seaweed()
    [port] = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for tool in ("fastreg", "dvc"):
            make_bucket(server.endpoint, f"reg-{tool}")
            reg = WORK / f"registry-{tool}"
            gateway = start_gateway(server, port)
            try:
                print(f"bench: building the {tool} registry", file=sys.stderr)
                build_registry(tool, reg, src, f"s3://reg-{tool}/store", endpoint, tools, env)
                print(f"bench: {tool}, timed pass", file=sys.stderr)
                res.update(consume(tool, tools[tool], str(reg), env, None))
            finally:
                gateway.stop()
            print(f"bench: {tool}, counting pass", file=sys.stderr)
            with FaultProxy(server.endpoint, error_rate=0, reset_rate=0, delay_rate=0, port=port) as proxy:
                res.update(consume(tool, tools[tool], str(reg), env, proxy.counts))
    finally:
        server.stop()
        empty(pause=False)
    lines = [
        "",
        "## Registry consumption (10k-image registry on SeaweedFS)",
        "",
        "Same registry content for both tools, same run. Times: straight to SeaweedFS (get one image and "
        "list: median of 5 runs, each from cold data caches; the others: one run). Bytes and requests: "
        "a second pass of the same commands through a counting proxy between the tool and SeaweedFS "
        "(Git traffic is local).",
        "",
        "| operation | fastreg (s) | DVC (s) | DVC / fastreg | fastreg bytes / requests | DVC bytes / requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key in (
        ("get one image (warm registry mirror)", "get-one"),
        ("get the whole dataset", "get-all"),
        ("import --rev v1", "import-v1"),
        ("update --rev v2 (+1,000 images)", "update-v2"),
        ("list -R", "list"),
    ):
        f, d = res[f"fastreg/{key}"], res[f"dvc/{key}"]
        lines.append(
            f"| {label} | {f:.2f} | {d:.2f} | **{d / f:.1f}×** | "
            f"{res[f'fastreg/{key}/bytes'] / 1e6:.2f} MB / {res[f'fastreg/{key}/requests']:.0f} | "
            f"{res[f'dvc/{key}/bytes'] / 1e6:.2f} MB / {res[f'dvc/{key}/requests']:.0f} |"
        )
    return lines


if __name__ == "__main__":
    from bench.tools import ensure_dvc, fastreg_cmd

    src = WORK / "images-10000"
    if not src.exists():
        images(src, 5000, 5000, 1, seed=7, mean_kb=100)
    print("\n".join(main(src, ensure_dvc(), fastreg_cmd())))

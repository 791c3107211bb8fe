"""Format 2 (SHA-256) against the format-1 build (XXH3-128) on the same data in the same run,
alternating, each command a fresh process: what the collision-resistant digest costs.

    python bench/digest_ab.py [--images 10000 --mean-kb 100] [--files 1000000 --kb 4] [--rounds 3]

The other build is this repository at FORMAT1_COMMIT (the last that wrote format 1), unpacked under
bench/work/format1 with its native extension built (or --other DIR: a built source tree), run with
its fastreg/ first on PYTHONPATH. Steps, per build, medians of --rounds:

- add (cold) of --images images (bench/gen.py, one project; between runs its cache, state and
  metafile are removed and dirty pages written out, untimed): the CPU cost of hashing, as both
  builds read a warm page cache;
- status, nothing changed, after that add;
- add (cold) and status of the ImageNet-shaped tree of bench/scale.py (--files of --kb KiB in
  1,000 folders; 0 to skip), with peak RSS;
- pull into an empty clone from SeaweedFS on 127.0.0.1 (each build pushed the images once to its
  own prefix, in its own format);
- one streaming epoch of fastreg.data's RegistryIterableDataset over those images (cold sample
  cache: ranged GETs of the packs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.gen import images  # noqa: E402
from bench.scale import generate, measure  # noqa: E402
from bench.tools import ensure_bytecode  # noqa: E402
from bench.trash import retire  # noqa: E402

FORMAT1_COMMIT = "a290140"

EPOCH = r"""
import os, sys, time
from fastreg.data import RegistryIterableDataset
reg, cache = sys.argv[1], sys.argv[2]
ds = RegistryIterableDataset(reg, "ds/data/train", cache_dir=cache, seed=1)
t = time.perf_counter()
n = sum(1 for _ in ds)
print(time.perf_counter() - t, n)
"""


def other_build(path: Path | None) -> Path:
    """A built source tree of the format-1 fastreg."""
    if path is not None:
        return path
    out = WORK / "format1"
    if not any(out.glob("fastreg/_hash*.so")):
        retire(out)
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", FORMAT1_COMMIT], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
        print(f"bench: building fastreg {FORMAT1_COMMIT} in {out}", file=sys.stderr)
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=out, check=True,
                       capture_output=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(out / "fastreg")], check=True)
    return out


def fresh(proj: Path) -> None:
    """The project as before its first add (data kept)."""
    shutil.rmtree(proj / ".fastreg" / "cache", ignore_errors=True)
    shutil.rmtree(proj / ".fastreg" / "state", ignore_errors=True)
    (proj / "ds.fastreg").unlink(missing_ok=True)


class AB:
    """The two builds, their environments and every timing taken."""

    def __init__(self, other: Path, rounds: int) -> None:
        base = dict(os.environ)
        base.pop("PYTHONPATH", None)
        self.sides = {"format 2 (SHA-256)": base, "format 1 (XXH3)": {**base, "PYTHONPATH": str(other)}}
        self.fastreg = [sys.executable, "-m", "fastreg"]
        self.rounds = rounds
        self.work = WORK / "digest-ab"
        self.rows: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def timed(self, step: str, side: str, cmd: list[str], cwd: Path, keep: bool = True) -> None:
        got = measure([*self.fastreg, "-q", *cmd], cwd, self.sides[side])
        if keep:
            self.rows.setdefault(step, {}).setdefault(side, []).append(got)

    def note(self, step: str, side: str, seconds: float) -> None:
        self.rows.setdefault(step, {}).setdefault(side, []).append((seconds, 0.0))

    def project(self, path: Path, env: dict[str, str]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
        subprocess.run([*self.fastreg, "-q", "init"], cwd=path, env=env, check=True)

    def local(self, path: Path, label: str) -> None:
        """add (cold) and status of the tree at path/ds, a warm-up round first."""
        for r in range(self.rounds + 1):
            for side in self.sides:
                fresh(path)
                self.timed(f"add (cold), {label}", side, ["add", "ds"], path, keep=r > 0)
                self.timed(f"status, nothing changed, {label}", side, ["status"], path, keep=r > 0)

    def remote(self, imgs: Path) -> None:
        """Each build pushes the images to its own prefix; then pull into an empty clone and one
        streaming epoch, in turn, a warm-up round first."""
        from tests.servers import ACCESS_KEY, SECRET_KEY, make_bucket, start_seaweed

        for env in self.sides.values():
            env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                       XDG_CACHE_HOME=str(self.work / "xdg"))
        server = start_seaweed()
        try:
            make_bucket(server.endpoint, "digest-ab")
            regs: dict[str, Path] = {}
            for i, (side, env) in enumerate(self.sides.items()):
                reg = regs[side] = self.work / f"reg{i}"
                self.project(reg, env)
                subprocess.run(["cp", "-al", str(imgs / "ds"), str(reg / "ds")], check=True)
                for cmd in (["remote", "add", "-d", "store", f"s3://digest-ab/r{i}"],
                            ["remote", "modify", "store", "endpoint_url", server.endpoint], ["add", "ds"], ["push"]):
                    subprocess.run([*self.fastreg, "-q", *cmd], cwd=reg, env=env, check=True)
                subprocess.run(["git", "add", "-A"], cwd=reg, check=True)
                subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x.invalid", "commit", "-qm", "ds"],
                               cwd=reg, check=True)
            clone = self.work / "clone"
            for r in range(self.rounds + 1):
                for side, env in self.sides.items():
                    retire(clone)
                    subprocess.run(["git", "clone", "-q", str(regs[side]), str(clone)], check=True)
                    shutil.rmtree(self.work / "xdg", ignore_errors=True)
                    self.timed("pull into an empty clone (S3)", side, ["pull"], clone, keep=r > 0)
                    shutil.rmtree(self.work / "samples", ignore_errors=True)
                    p = subprocess.run([sys.executable, "-c", EPOCH, str(regs[side]), str(self.work / "samples")],
                                       env=env, check=True, capture_output=True, text=True)
                    if r > 0:
                        self.note("streaming epoch, fastreg.data (S3, cold)", side, float(p.stdout.split()[0]))
            retire(clone)
        finally:
            server.stop()

    def report(self) -> None:
        new, old = self.sides
        print(f"| step ({self.rounds} rounds, alternating; medians) | {new} s | MiB | {old} s | MiB | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        out = {}
        for step, got in self.rows.items():
            a = statistics.median(t for t, _ in got[new])
            b = statistics.median(t for t, _ in got[old])
            ma, mb = max(m for _, m in got[new]), max(m for _, m in got[old])
            out[step] = {"new": a, "old": b, "ratio": a / b, "new_mib": ma, "old_mib": mb}
            print(f"| {step} | {a:.2f} | {ma:.0f} | {b:.2f} | {mb:.0f} | **{a / b:.2f}x** |")
        (self.work / "results.json").write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", type=Path, help="a built source tree of the format-1 fastreg")
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--mean-kb", type=float, default=100)
    ap.add_argument("--files", type=int, default=0, help="files of the scale tree (0: skip it)")
    ap.add_argument("--kb", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ensure_bytecode()
    ab = AB(other_build(args.other), args.rounds)
    retire(ab.work)
    ab.work.mkdir(parents=True)
    imgs = ab.work / "images"
    ab.project(imgs, ab.sides["format 2 (SHA-256)"])
    total = images(imgs / "ds", args.images, 0, 1, seed=5, mean_kb=args.mean_kb)
    print(f"bench: {args.images} images, {total / 1e9:.2f} GB", file=sys.stderr)
    ab.local(imgs, f"{args.images:,} images")
    if args.files:
        scale = ab.work / "scale"
        ab.project(scale, ab.sides["format 2 (SHA-256)"])
        print(f"bench: generating {args.files} files", file=sys.stderr)
        generate(scale / "ds", args.files, args.kb)
        ab.local(scale, f"{args.files:,} files")
        retire(scale)
    ab.remote(imgs)
    ab.report()
    retire(imgs)


if __name__ == "__main__":
    main()

"""What the benchmark scripts share: running a command and timing it, peak RSS of a command,
the peers' installs (DVC in its own virtualenv under bench/work, pyfastcdc), the fastreg
command line, compiled bytecode, a fresh Git project."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.trash import retire

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run a command, return its wall time; fail loudly on a non-zero exit."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed in {cwd}:\n{p.stdout}\n{p.stderr}")
    return dt


_RSS_LAUNCHER = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t, usage.ru_maxrss, status)\n"
)


def peak_rss_kb(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of cmd.  Launched from a small fresh interpreter: a child
    forked from this process would inherit its (large) high-water mark."""
    out = subprocess.run([sys.executable, "-c", _RSS_LAUNCHER, *cmd], cwd=cwd, capture_output=True, text=True,
                         check=True).stdout.split()
    if out[2] != "0":
        raise SystemExit(f"bench: {' '.join(cmd)} failed in {cwd}")
    return float(out[0]), int(out[1])


def ensure_bytecode() -> None:
    """Compile fastreg's modules once, as `pip install` does for an installed package and did
    for DVC's: in an editable install on a machine with PYTHONDONTWRITEBYTECODE set, every
    command would otherwise compile its modules from source (~50 ms of a one-file `get`)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fastreg")], check=True)


def ensure_dvc() -> Path:
    venv = WORK / "dvc-venv"
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        print("bench: installing DVC into", venv, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvc[s3]"], check=True)
    return dvc


def ensure_pyfastcdc() -> None:
    try:
        import pyfastcdc  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyfastcdc"], check=True)


def fastreg_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("fastreg")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fastreg"]


def git_project(path: Path) -> None:
    retire(path)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)

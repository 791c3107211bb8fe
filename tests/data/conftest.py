"""Registries for the training-dataset tests, built once per module with the real CLI: one on
SeaweedFS, one on a local-directory remote (small packs, so an epoch has many spans), each
with a v1 and a v2 (+40 images)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import files_under, git

ROOT = Path(__file__).resolve().parents[2]
DATA = "ds/data/train"


@dataclass
class Reg:
    url: str
    root: Path
    v1: dict[str, bytes]  # path from the registry's root -> bytes, under DATA
    v2: dict[str, bytes]


def fastreg(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "fastreg", *args], cwd=root, check=True, capture_output=True)


def build(root: Path, remote: str, *options: tuple[str, str]) -> Reg:
    sys.path.insert(0, str(ROOT))
    from bench.gen import images

    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    fastreg(root, "init")
    fastreg(root, "remote", "add", "-d", "store", remote)
    for opt, value in (("pack_size", "1M"), *options):
        fastreg(root, "remote", "modify", "store", opt, value)
    images(root / "ds", 300, 20, 1, seed=7, mean_kb=10)
    train = root / DATA
    (train / "cats" / "big.bin").write_bytes(os.urandom(3 << 20))  # a file of several chunks
    (train / "dogs" / "empty.jpg").write_bytes(b"")
    (train / "top.txt").write_bytes(b"a file at the top: no class\n")
    fastreg(root, "add", "ds")
    fastreg(root, "push")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    git(root, "tag", "v1")
    v1 = {f"{DATA}/{k}": v for k, v in files_under(train).items()}
    images(root / "ds", 40, 0, 500, seed=7, mean_kb=10)
    fastreg(root, "add", "ds")
    fastreg(root, "push")
    git(root, "commit", "-qam", "v2")
    git(root, "tag", "v2")
    v2 = {f"{DATA}/{k}": v for k, v in files_under(train).items()}
    return Reg(str(root), root, v1, v2)


@pytest.fixture(scope="module")
def reg_local(tmp_path_factory: pytest.TempPathFactory) -> Reg:
    base = tmp_path_factory.mktemp("data-local")
    return build(base / "registry", str(base / "remote"))


@pytest.fixture(scope="module")
def reg_s3(tmp_path_factory: pytest.TempPathFactory, seaweed) -> Reg:  # type: ignore[no-untyped-def]
    from tests.servers import make_bucket

    name = "t-data-" + os.urandom(3).hex()
    make_bucket(seaweed.endpoint, name)
    base = tmp_path_factory.mktemp("data-s3")
    return build(base / "registry", f"s3://{name}/registry", ("endpoint_url", seaweed.endpoint))

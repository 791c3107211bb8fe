"""DVC registries for the tests of the DVC reader and migrate, built once per session by real DVC (see
tests/dvctools.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dvctools import Dvc, DvcProject, build_v2, build_v3, new_project


def _images(out: Path, train: int = 40, validation: int = 20, start: int = 1, mean_kb: float = 30) -> int:
    from bench.gen import images

    return images(out, train, validation, start, seed=1, mean_kb=mean_kb)


@pytest.fixture(scope="session")
def dvc3(tmp_path_factory: pytest.TempPathFactory) -> Dvc:
    return Dvc(3, tmp_path_factory.mktemp("dvc3-site"))


@pytest.fixture(scope="session")
def dvc2(tmp_path_factory: pytest.TempPathFactory) -> Dvc:
    return Dvc(2, tmp_path_factory.mktemp("dvc2-site"))


@pytest.fixture(scope="session")
def built3(tmp_path_factory: pytest.TempPathFactory, dvc3: Dvc) -> Path:
    """The DVC 3 registry (reg/) and its local remote (remote/, named relative to the registry,
    so a copy of the folder is a registry of its own)."""
    top = tmp_path_factory.mktemp("dvc3")
    p = new_project(top / "reg", dvc3, "../remote")
    build_v3(p, _images)
    return top


@pytest.fixture
def reg3(built3: Path, dvc3: Dvc) -> DvcProject:
    return DvcProject(built3 / "reg", dvc3, "../remote")


@pytest.fixture
def own3(built3: Path, tmp_path: Path, dvc3: Dvc) -> DvcProject:
    """A copy of the DVC 3 registry and its remote, for a test that damages them."""
    shutil.copytree(built3, tmp_path / "copy", symlinks=True)
    return DvcProject(tmp_path / "copy" / "reg", dvc3, "../remote")


@pytest.fixture(scope="session")
def reg3_s3(tmp_path_factory: pytest.TempPathFactory, dvc3: Dvc, seaweed) -> DvcProject:
    """The same DVC 3 registry with its data on SeaweedFS (S3)."""
    from tests.servers import make_bucket

    make_bucket(seaweed.endpoint, "dvc3-registry")
    top = tmp_path_factory.mktemp("dvc3-s3")
    p = new_project(top / "reg", dvc3, "s3://dvc3-registry/store", endpoint=seaweed.endpoint)
    build_v3(p, _images)
    return p


@pytest.fixture(scope="session")
def reg2(tmp_path_factory: pytest.TempPathFactory, dvc2: Dvc) -> DvcProject:
    top = tmp_path_factory.mktemp("dvc2")
    p = new_project(top / "reg", dvc2, "../remote")
    build_v2(p)
    return p



"""fastreg.data through torch's DataLoader (torch is a test-time install: `make test` adds it),
and the example of docs/train.md run as it is written."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastreg.data import RegistryDataset, RegistryIterableDataset
from tests.data.conftest import DATA, ROOT, Reg, fastreg
from tests.helpers import git

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402


def _paths(loader: DataLoader) -> list[str]:
    return [p for _, _, paths in loader for p in paths]


def test_dataloader_workers_read_every_sample_once_and_resume(reg_local: Reg, tmp_path: Path) -> None:
    def make() -> RegistryIterableDataset:
        return RegistryIterableDataset(reg_local.url, DATA, rev="v2", seed=3, shuffle_buffer=40,
                                       cache_dir=tmp_path / "c", transform=len)

    ds = make()
    ds.set_epoch(1)
    full = _paths(DataLoader(ds, batch_size=4, num_workers=2))
    assert sorted(full) == sorted(reg_local.v2)
    assert _paths(DataLoader(ds, batch_size=4, num_workers=2)) == full  # the same epoch, the same order
    # stop after 11 batches, as a job killed mid-epoch would
    taken: list[str] = []
    for i, (sizes, _, paths) in enumerate(DataLoader(ds, batch_size=4, num_workers=2)):
        if i == 11:
            break
        assert [int(s) for s in sizes] == [len(reg_local.v2[p]) for p in paths]
        taken += paths
    state = ds.state_dict(consumed=len(taken), batch_size=4)
    again = make()
    again.load_state_dict(state)
    rest = _paths(DataLoader(again, batch_size=4, num_workers=2))
    assert taken + rest == full
    ds.close()
    again.close()


def test_map_style_with_a_shuffling_dataloader(reg_s3: Reg, tmp_path: Path) -> None:
    ds = RegistryDataset(reg_s3.url, DATA, rev="v1", cache_dir=tmp_path / "c")
    loader = DataLoader(ds, batch_size=16, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    got = {}
    for data, labels, paths in loader:
        assert labels.dtype == torch.int64
        got.update(zip(paths, data, strict=True))
    assert got == reg_s3.v1
    ds.close()


def test_the_docs_example_runs(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "registry"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    fastreg(root, "init")
    fastreg(root, "remote", "add", "-d", "store", str(tmp_path / "remote"))
    for cls in ("cats", "dogs", "fish"):
        (root / "pets/train" / cls).mkdir(parents=True)
        for i in range(12):
            buf = io.BytesIO()
            Image.frombytes("RGB", (40, 30), os.urandom(40 * 30 * 3)).save(buf, "PNG")
            (root / "pets/train" / cls / f"{cls}.{i:02d}.png").write_bytes(buf.getvalue())
    fastreg(root, "add", "pets")
    fastreg(root, "push")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    git(root, "tag", "v1")
    text = (ROOT / "docs" / "train.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(f"REPO = {str(root)!r}\n" + code.group(1))
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["epoch 0: 36 images in 3 classes", "epoch 1: 36 images in 3 classes"]

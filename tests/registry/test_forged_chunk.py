"""A writer to the remote who cannot write to Git replaces one image's bytes inside its pack (same
key, same offset and length, other bytes; the index segment untouched): every read path refuses
them and names the file, none hands them out."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fastreg.objects import pack
from tests.helpers import file_id, files_under, git

VICTIM = "ds/data/train/cats/cat.0003.jpg"


@pytest.fixture
def forged(tmp_path: Path, project: Path, run, make_images) -> tuple[Path, bytes]:
    """A registry (format 2, local remote) whose VICTIM's chunk was replaced in its pack."""
    make_images(project / "ds", train=20, validation=4)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    original = (project / VICTIM).read_bytes()
    target = file_id(original)
    remote = tmp_path / "remote"
    for seg_path in (remote / "index").iterdir():
        seg = pack.decode_segment(seg_path.read_bytes(), seg_path.name)
        for digest, offset, length in seg.items():
            if digest == target:
                victim = remote / "packs" / seg.pack.hex()[:2] / seg.pack.hex()
                body = bytearray(victim.read_bytes())
                body[offset : offset + length] = bytes(b ^ 0x5A for b in original)  # other bytes, same length
                victim.chmod(0o644)
                victim.write_bytes(bytes(body))
                return project, original
    raise AssertionError("the victim's chunk is in no segment")


def test_a_replaced_chunk_is_refused_on_every_read_path(forged: tuple[Path, bytes], tmp_path: Path, run,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    project, original = forged
    url = str(project)
    # get: the error names the file, and nothing is left at the output
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    _, err = run("get", url, VICTIM, "-o", "one", rc=3)
    assert "cat.0003.jpg" in err and not (out / "one").exists()
    _, err = run("get", url, "ds", "-o", "all", rc=3)
    assert "cat.0003.jpg" in err and list(out.iterdir()) == []
    # pull into a clone: every other file arrives, the victim is named and not written
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
    monkeypatch.chdir(clone)
    _, err = run("pull", rc=3)
    assert "cat.0003.jpg" in err
    assert not (clone / VICTIM).exists()
    got = files_under(clone / "ds")
    assert len(got) == len(files_under(project / "ds")) - 1
    assert all(data == (project / "ds" / rel).read_bytes() for rel, data in got.items())
    # fsspec
    import fsspec

    from fastreg.errors import IntegrityError

    fs = fsspec.filesystem("fastreg", repo=url)
    with pytest.raises(IntegrityError, match=r"cat\.0003\.jpg"):
        fs.cat_file(VICTIM)
    with pytest.raises(IntegrityError, match=r"cat\.0003\.jpg"), fs.open(VICTIM) as f:
        f.read()
    # fastreg.data, map-style and streaming
    from fastreg.data import RegistryDataset, RegistryIterableDataset

    ds = RegistryDataset(url, "ds/data/train", cache_dir=tmp_path / "samples")
    i = next(k for k in range(len(ds)) if ds.index.path(k) == VICTIM)
    with pytest.raises(IntegrityError, match=r"cat\.0003\.jpg"):
        ds[i]
    ds.close()
    with pytest.raises(IntegrityError, match=r"cat\.0003\.jpg"):
        for sample in RegistryIterableDataset(url, "ds/data/train", cache_dir=tmp_path / "samples2"):
            assert sample.data != bytes(b ^ 0x5A for b in original)
    os.chdir(tmp_path)


async def test_the_web_view_refuses_a_replaced_chunk(forged: tuple[Path, bytes]) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from fastreg.ui.model import Registry
    from fastreg.ui.server import make_app

    project, _ = forged
    client = TestClient(TestServer(make_app(Registry(str(project)))))
    await client.start_server()
    try:
        r = await client.get(f"/raw/{VICTIM}")
        assert r.status >= 500
        assert "cat.0003.jpg" in await r.text()
    finally:
        await client.close()

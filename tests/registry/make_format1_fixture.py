"""Build tests/registry/fixtures/format1.tar.xz: a registry and its local remote as fastreg wrote
them before format 2 (XXH3-128 digests, version-1 index segments, remote format 1).

    git worktree add /tmp/fastreg-format1 a290140      # the last commit that wrote format 1
    (cd /tmp/fastreg-format1 && python setup.py build_ext --inplace)
    python tests/registry/make_format1_fixture.py /tmp/fastreg-format1

The archive holds `registry/` (a Git repository: `data/` and `model.bin` tracked, tags v1 and
v1.1, its default remote the relative path ../remote) and `remote/`. Data is generated from fixed
seeds; test_format1.py regenerates the same bytes to compare with what it reads.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def image(i: int, version: int = 1) -> bytes:
    """A small "image": 700-1,500 random bytes (incompressible, like a JPEG)."""
    r = random.Random(f"img-{i}-{version}")
    return r.randbytes(r.randint(700, 1500))


def model(version: int = 1) -> bytes:
    """A 300 KB text file: several chunks, and small once compressed."""
    lines = [f"weight {i} = {i * 7919 % 10007}.{i % 97:02d}\n" for i in range(13_000)]
    if version == 2:
        lines[1000:1010] = [f"weight {i} = changed in v1.1\n" for i in range(10)]
    return "".join(lines).encode()


def files(version: int) -> dict[str, bytes]:
    """What data/ and model.bin hold at v1 (version 1) and v1.1 (version 2)."""
    out = {f"data/{'cats' if i % 2 else 'dogs'}/{i:03d}.jpg": image(i) for i in range(24)}
    out["model.bin"] = model(1)
    if version == 2:
        out["data/cats/001.jpg"] = image(1, 2)
        out["data/dogs/024.jpg"] = image(24)
        del out["data/dogs/002.jpg"]
        out["model.bin"] = model(2)
    return out


def main(old: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(old), "GIT_AUTHOR_DATE": "2026-12-01T12:00:00Z",
           "GIT_COMMITTER_DATE": "2026-12-01T12:00:00Z"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reg = root / "registry"
        reg.mkdir()

        def run(*args: str) -> None:
            subprocess.run(args, cwd=reg, env=env, check=True, stdout=subprocess.DEVNULL)

        def fastreg(*args: str) -> None:
            run(sys.executable, "-m", "fastreg", *args)

        def write(version: int) -> None:
            for rel, data in files(version).items():
                p = reg / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            if version == 2:
                (reg / "data/dogs/002.jpg").unlink()

        run("git", "init", "-q", "-b", "main")
        run("git", "config", "user.email", "fixture@fastreg.test")
        run("git", "config", "user.name", "fixture")
        fastreg("init")
        fastreg("remote", "add", "-d", "store", "../remote")
        for version, tag, what in ((1, "v1", "24 images and a model (format 1)"),
                                   (2, "v1.1", "one image changed, one added, one deleted; the model edited")):
            write(version)
            fastreg("add", "data", "model.bin")
            fastreg("push")
            run("git", "add", "-A")
            run("git", "commit", "-q", "-m", f"{tag}: {what}")
            run("git", "tag", tag)
        run("git", "gc", "-q")
        out = HERE / "fixtures" / "format1.tar.xz"
        out.parent.mkdir(exist_ok=True)
        with tarfile.open(out, "w:xz") as tar:
            for name in ("registry/.git", "registry/.fastreg/config", "registry/.gitignore",
                         "registry/data.fastreg", "registry/model.bin.fastreg", "remote"):
                if (root / name).exists():
                    tar.add(root / name, name)
        print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())

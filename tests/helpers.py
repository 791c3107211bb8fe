"""What several test modules share: registries and projects set up through the CLI, a remote
read and damaged behind fastreg's back, files of a folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.servers import _client


def file_id(data: bytes) -> bytes:
    """The digest `add` records for a file with these bytes (format 2: its chunks' SHA-256)."""
    from fastreg.chunking import default_chunker

    return default_chunker().digest_buffer(data)[0]


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def make_registry(project: Path, run, make_images, remote_url: str, *options: tuple[str, str]) -> dict[str, dict]:
    """v1: 20+20 train, 10+10 validation; v2: +20 train images. Tags cats-dogs-v1 and -v2."""
    os.chdir(project)  # monkeypatch (used by the fixtures) restores the working directory afterwards
    ds = project / "use-cases" / "cats-dogs"
    make_images(ds, train=40, validation=20)
    (project / "README.md").write_text("a registry\n")
    run("remote", "add", "-d", "store", remote_url)
    for option, value in options:
        run("remote", "modify", "store", option, value)
    run("add", "use-cases/cats-dogs")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "cats-dogs v1")
    git(project, "tag", "cats-dogs-v1")
    v1 = files_under(ds)
    make_images(ds, train=20, validation=0, start=500)
    run("add", "use-cases/cats-dogs")
    run("push")
    git(project, "commit", "-qam", "cats-dogs v2")
    git(project, "tag", "cats-dogs-v2")
    return {"v1": v1, "v2": files_under(ds)}


def setup_registry(project: Path, run, make_images, url: str, *extra: tuple[str, str]) -> dict[str, bytes]:
    make_images(project / "ds", train=30, validation=10)
    (project / "model.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    run("add", "ds", "model.bin")
    run("remote", "add", "-d", "store", url)
    for option, value in extra:
        run("remote", "modify", "store", option, value)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")
    return {**{f"ds/{k}": v for k, v in files_under(project / "ds").items()},
            "model.bin": (project / "model.bin").read_bytes()}


class Remote:
    """Reads, writes and deletes a remote's objects behind fastreg's back (the damage)."""

    def __init__(self, root: Path | None = None, endpoint: str = "", bucket: str = "", prefix: str = "r") -> None:
        self.root, self.endpoint, self.bucket, self.prefix = root, endpoint, bucket, prefix

    def keys(self, under: str) -> list[str]:
        if self.root is not None:
            return sorted(p.relative_to(self.root).as_posix() for p in (self.root / under).rglob("*") if p.is_file())
        c = _client(self.endpoint)
        pages = c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        return sorted(o["Key"][len(self.prefix) + 1:] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        return _client(self.endpoint).get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        if self.root is not None:
            (self.root / key).chmod(0o644)
            (self.root / key).write_bytes(data)
        else:
            _client(self.endpoint).put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
        else:
            _client(self.endpoint).delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")


def largest(remote: Remote, under: str) -> str:
    return max(remote.keys(under), key=lambda k: len(remote.read(k)))


def setup_project(project: Path, run, make_images, url: str, *options: tuple[str, str]) -> dict[str, bytes]:
    make_images(project / "ds", train=40, validation=10)
    run("remote", "add", "-d", "store", url)
    for option, value in options:
        run("remote", "modify", "store", option, value)
    run("remote", "modify", "store", "pack_size", "1M")
    run("add", "ds")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ds")
    return files_under(project / "ds")

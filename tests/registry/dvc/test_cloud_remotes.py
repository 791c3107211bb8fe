"""DVC projects whose remote is Google Cloud Storage (gs://, on a real fake-gcs-server), Azure Blob
(azure://, on a real Azurite) or an SSH server (ssh://, on the real sshd): read as registries
(list, get) and migrated (the remote carried over, pushed, pulled in a fresh clone). Each
project is built by real DVC 3 with a local remote, whose objects are then where DVC's GCS,
Azure or SSH remote holds them (DVC's support for those is plugins the tests do not install)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from fastreg.storage.gcs import GCSStore
from tests.dvctools import Dvc
from tests.helpers import files_under, git


def _upload(root: Path, url: str, endpoint: str) -> None:
    objects = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    async def run() -> None:
        store = GCSStore(url, endpoint_url=endpoint)
        for key, data in objects.items():
            await store.put(key, data)
        await store.close()

    asyncio.run(run())


def test_a_dvc_project_on_gcs_is_read_and_migrated(tmp_path: Path, dvc3: Dvc, run, monkeypatch, gcs,
                                                   gcs_bucket) -> None:
    proj = tmp_path / "proj"
    (proj / "data" / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, check=True)
    want = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 40}
    for rel, data in want.items():
        (proj / "data" / rel).write_bytes(data)
    dvc3("init", "-q", cwd=proj)
    dvc3("remote", "add", "-d", "store", str(tmp_path / "dvc-remote"), cwd=proj)
    dvc3("add", "-q", "data", cwd=proj)
    dvc3("push", "-q", cwd=proj)
    _upload(tmp_path / "dvc-remote", f"gs://{gcs_bucket}/dvcstore", gcs.endpoint)
    (proj / ".dvc" / "config").write_text(f"[core]\n    remote = store\n['remote \"store\"']\n"
                                          f"    url = gs://{gcs_bucket}/dvcstore\n    endpointurl = {gcs.endpoint}\n")
    git(proj, "add", "-A")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "data on gcs")
    monkeypatch.chdir(tmp_path)
    out, _ = run("list", str(proj), "-R", "--tracked-only")
    assert [line.split()[-1] for line in out.splitlines()] == ["data/", "data/a.txt", "data/sub/b.bin"]
    run("get", str(proj), "data", "-o", "got")
    assert files_under(tmp_path / "got") == want
    # migrate: the GCS remote becomes a fastreg remote beside DVC's data; push; a fresh clone pulls
    monkeypatch.chdir(proj)
    run("migrate", "--push")
    config = (proj / ".fastreg" / "config").read_text()
    assert f'url = "gs://{gcs_bucket}/dvcstore-fastreg"' in config and gcs.endpoint in config
    git(proj, "add", "-A")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "migrated")
    subprocess.run(["git", "clone", "-q", str(proj), str(tmp_path / "mate")], check=True)
    monkeypatch.chdir(tmp_path / "mate")
    run("pull")
    assert files_under(tmp_path / "mate" / "data") == want


def test_a_dvc_project_on_an_ssh_server_is_read_and_migrated(tmp_path: Path, dvc3: Dvc, run, monkeypatch, sshd,
                                                             ssh_home) -> None:
    """The same with an SSH remote (DVC's `ssh://` with its `keyfile` option), on the real sshd:
    the server's folder is the one DVC pushed to (the server runs on this machine)."""
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, check=True)
    want = {"a.txt": b"over ssh\n", "b.bin": bytes(range(256)) * 10}
    for rel, data in want.items():
        (proj / "data" / rel).write_bytes(data)
    store = tmp_path / "dvc-store"
    dvc3("init", "-q", cwd=proj)
    dvc3("remote", "add", "-d", "store", str(store), cwd=proj)
    dvc3("add", "-q", "data", cwd=proj)
    dvc3("push", "-q", cwd=proj)
    (proj / ".dvc" / "config").write_text(f"[core]\n    remote = store\n['remote \"store\"']\n"
                                          f"    url = {sshd.url(str(store))}\n    keyfile = {sshd.keyfile}\n")
    git(proj, "add", "-A")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "data over ssh")
    monkeypatch.chdir(tmp_path)
    run("get", str(proj), "data", "-o", "got")
    assert files_under(tmp_path / "got") == want
    monkeypatch.chdir(proj)
    run("migrate", "--push")
    assert f'url = "{sshd.url(str(store))}-fastreg"' in (proj / ".fastreg" / "config").read_text()
    assert sshd.keyfile in (proj / ".fastreg" / "config.local").read_text()  # this machine's key: not committed
    assert any((tmp_path / "dvc-store-fastreg" / "index").iterdir())


def test_a_dvc_project_on_azure_is_read_and_migrated(tmp_path: Path, dvc3: Dvc, run, monkeypatch, azurite,
                                                     container) -> None:
    """The same with an Azure remote (DVC's `azure://CONTAINER/PATH`) on Azurite: the committed
    config names the container only; the secret is where DVC users keep it: the environment for
    a reader of the registry, `.dvc/config.local` for the project's own migrate, from where it
    goes to `.fastreg/config.local`, never into Git."""
    from fastreg.storage.azure import AzureStore

    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, check=True)
    want = {"a.txt": b"in a blob\n", "b.bin": bytes(range(256)) * 10}
    for rel, data in want.items():
        (proj / "data" / rel).write_bytes(data)
    dvc3("init", "-q", cwd=proj)
    dvc3("remote", "add", "-d", "store", str(tmp_path / "dvc-remote"), cwd=proj)
    dvc3("add", "-q", "data", cwd=proj)
    dvc3("push", "-q", cwd=proj)
    objects = {p.relative_to(tmp_path / "dvc-remote").as_posix(): p.read_bytes()
               for p in sorted((tmp_path / "dvc-remote").rglob("*")) if p.is_file()}

    async def upload() -> None:
        store = AzureStore(f"azure://{container}/dvcstore", connection_string=azurite.connection_string)
        for key, data in objects.items():
            await store.put(key, data)
        await store.close()

    asyncio.run(upload())
    (proj / ".dvc" / "config").write_text(f"[core]\n    remote = store\n['remote \"store\"']\n"
                                          f"    url = azure://{container}/dvcstore\n")
    (proj / ".dvc" / "config.local").write_text(f"['remote \"store\"']\n    connection_string = "
                                                f"{azurite.connection_string}\n")
    git(proj, "add", "-A")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "data on azure")
    assert b"AccountKey" not in subprocess.run(["git", "show", "HEAD:.dvc/config"], cwd=proj, capture_output=True,
                                               check=True).stdout
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    run("get", str(proj), "data", "-o", "got")
    assert files_under(tmp_path / "got") == want
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.chdir(proj)
    run("migrate", "--push")
    assert f'url = "azure://{container}/dvcstore-fastreg"' in (proj / ".fastreg" / "config").read_text()
    assert "AccountKey" not in (proj / ".fastreg" / "config").read_text()
    assert "AccountKey" in (proj / ".fastreg" / "config.local").read_text()

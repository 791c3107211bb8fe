"""One contract every Store backend passes: memory, local, S3 on a real SeaweedFS, GCS on a real
fake-gcs-server, Azure Blob on a real Azurite, SSH (SFTP) on the distribution's real sshd, and (read
paths) HTTP on a real aiohttp server and on `python -m http.server`, which ignores Range."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastreg.errors import ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.azure import AzureStore
from fastreg.storage.base import Store
from fastreg.storage.gcs import GCSStore
from fastreg.storage.http import HTTPStore
from fastreg.storage.local import LocalStore
from fastreg.storage.memory import MemoryStore
from fastreg.storage.s3 import S3Store
from fastreg.storage.ssh import SSHStore
from tests.servers import start_http

BLOB = os.urandom(300_000)
SEED = {"packs/aa/one": BLOB, "packs/bb/two": b"hello", "index/seg1": b"x" * 10, "empty": b""}

WRITABLE = ["memory", "local", "s3", "gcs", "azure", "ssh"]
READ_ONLY = ["http", "http-norange"]


@pytest.fixture(params=WRITABLE + READ_ONLY)
async def store(request, tmp_path: Path) -> AsyncIterator[Store]:
    kind = request.param
    if kind == "memory":
        s: Store = MemoryStore()
    elif kind == "local":
        s = LocalStore(tmp_path / "remote")
    elif kind == "s3":
        seaweed = request.getfixturevalue("seaweed")
        bucket = request.getfixturevalue("bucket")
        s = S3Store(f"s3://{bucket}/some/prefix", endpoint_url=seaweed.endpoint)
    elif kind == "gcs":
        gcs = request.getfixturevalue("gcs")
        bucket = request.getfixturevalue("gcs_bucket")
        s = GCSStore(f"gs://{bucket}/some/prefix", endpoint_url=gcs.endpoint)
    elif kind == "azure":
        azurite = request.getfixturevalue("azurite")
        container = request.getfixturevalue("container")
        s = AzureStore(f"azure://{container}/some/prefix", connection_string=azurite.connection_string)
    elif kind == "ssh":
        sshd = request.getfixturevalue("sshd")
        request.getfixturevalue("ssh_home")
        s = SSHStore(sshd.url(str(tmp_path / "sftp" / "some" / "prefix")), keyfile=sshd.keyfile)
    else:
        root = tmp_path / "served"
        seed = LocalStore(root)
        for k, v in SEED.items():
            await seed.put(k, v)
        server = start_http(root, ignore_range=kind == "http-norange")
        request.addfinalizer(server.stop)
        s = HTTPStore(server.url + "/")
    if kind in WRITABLE:
        for k, v in SEED.items():
            await s.put(k, v)
    yield s
    await s.close()


async def test_get_whole_and_ranges(store: Store) -> None:
    assert await store.get("packs/aa/one") == BLOB
    assert await store.get("packs/aa/one", 1000, 2000) == BLOB[1000:2000]
    assert await store.get("packs/aa/one", 299_990) == BLOB[299_990:]
    assert await store.get("packs/aa/one", 5, 5) == b""
    assert await store.get("packs/bb/two", 1, 3) == b"el"
    assert await store.get("empty") == b""


async def test_get_into_fills_the_callers_buffer(store: Store) -> None:
    """The read path of fetch: bytes [start, end) in a reused buffer, right on every backend
    (also when the server ignores Range), shorter at the object's end, and a missing key is
    still ObjectNotFound."""
    buf = bytearray(70_000)
    for start, end in ((0, 70_000), (123_456, 150_000), (299_000, 300_000)):
        view = await store.get_into("packs/aa/one", start, end, buf)
        assert bytes(view) == BLOB[start:end]
        del view
    view = await store.get_into("packs/aa/one", 299_990, 300_100, buf)  # past the end: short
    assert bytes(view) == BLOB[299_990:]
    del view
    assert bytes(await store.get_into("packs/bb/two", 1, 1, buf)) == b""
    with pytest.raises(ObjectNotFound):
        await store.get_into("packs/zz/missing", 0, 10, buf)


async def test_missing_key(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("packs/zz/missing")
    assert await store.exists("packs/zz/missing") is False
    assert await store.exists("packs/bb/two") is True


async def test_write_list_delete(store: Store) -> None:
    if store.read_only:
        with pytest.raises(ReadOnlyStore):
            await store.put("new", b"x")
        with pytest.raises(ReadOnlyStore):
            await store.delete("packs/bb/two")
        assert not store.can_list or await store.list("packs/")
        return
    listing = await store.list("packs/")
    assert [(o.key, o.size) for o in listing] == [("packs/aa/one", len(BLOB)), ("packs/bb/two", 5)]
    assert [o.key for o in await store.list("index/")] == ["index/seg1"]
    assert await store.list("nothing/") == []
    await store.put("packs/bb/two", b"replaced")  # same key again: the new bytes win
    assert await store.get("packs/bb/two") == b"replaced"
    await store.delete("packs/bb/two")
    await store.delete("packs/bb/two")  # deleting twice is fine
    assert not await store.exists("packs/bb/two")


async def test_s3_multipart_upload(seaweed, bucket) -> None:
    from fastreg.storage import s3 as s3mod

    s = S3Store(f"s3://{bucket}", endpoint_url=seaweed.endpoint)
    big = os.urandom(s3mod.MULTIPART_THRESHOLD + 3 * 1024 * 1024)
    await s.put("big", big)
    assert await s.get("big", len(big) - 10) == big[-10:]
    assert len(await s.get("big")) == len(big)
    await s.close()


async def test_s3_listing_pages_and_odd_prefixes(seaweed, bucket, monkeypatch) -> None:
    """Listings go through the signed reader (ListObjectsV2): every page is followed, and a
    prefix with spaces, '+' and non-ASCII characters is signed and matched as written."""
    from fastreg.storage import s3 as s3mod

    monkeypatch.setattr(s3mod, "LIST_PAGE", 2)
    s = S3Store(f"s3://{bucket}/a dir+x/é", endpoint_url=seaweed.endpoint)
    keys = [f"index/seg{i}" for i in range(7)]
    for i, k in enumerate(keys):
        await s.put(k, b"x" * i)
    await s.put("packs/aa/one", b"p")
    listing = await s.list("index/")
    assert [(o.key, o.size) for o in listing] == [(k, i) for i, k in enumerate(keys)]
    assert all(o.mtime > 1_700_000_000 for o in listing)
    assert [o.key for o in await s.list("")] == [*keys, "packs/aa/one"]
    assert await s.list("nothing/") == []
    await s.close()
    missing = S3Store("s3://no-such-bucket-here/x", endpoint_url=seaweed.endpoint)
    with pytest.raises(StorageError, match="bucket does not exist"):
        await missing.list("index/")
    await missing.close()


async def test_s3_wrong_credentials_is_a_clear_error(seaweed, bucket, monkeypatch) -> None:
    """A gateway that knows one identity (as a real S3 service does): the right key works, a wrong
    secret or an unknown key is 'access denied', for reads, writes and listings, and never retried."""
    from tests.servers import ACCESS_KEY, free_ports, start_gateway

    [port] = free_ports(1)
    gw = start_gateway(seaweed, port, identity=True)
    try:
        good = S3Store(f"s3://{bucket}/x", endpoint_url=gw.endpoint)
        await good.put("k", b"v")
        assert await good.get("k") == b"v"
        await good.close()
        for key, secret in ((ACCESS_KEY, "not-the-secret"), ("someone-else", "whatever")):
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
            s = S3Store(f"s3://{bucket}/x", endpoint_url=gw.endpoint)
            for op in (s.put("k2", b"v"), s.get("k"), s.list("")):
                with pytest.raises(StorageError, match="access denied") as exc:
                    await op
                assert not exc.value.retryable
            await s.close()
    finally:
        gw.stop()


async def test_s3_reads_of_a_missing_bucket_are_a_clear_error(seaweed) -> None:
    s = S3Store("s3://no-such-bucket-here/x", endpoint_url=seaweed.endpoint)
    for read in (s.get("k"), s.get("k", 0, 10), s.get_into("k", 0, 10, bytearray(10))):
        with pytest.raises(StorageError, match="bucket does not exist") as exc:
            await read
        assert not exc.value.retryable
    await s.close()


async def test_unreachable_endpoint_is_retryable() -> None:
    s = S3Store("s3://bucket-name/x", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StorageError) as exc:
        await s.get("k")
    assert exc.value.retryable
    await s.close()

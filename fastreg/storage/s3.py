"""S3-compatible object storage through aiobotocore (AWS S3, MinIO, Ceph RGW, SeaweedFS, R2...);
GETs go through the lighter signed reader of storage/s3read.py (no client, no service model).

Credentials come from the standard AWS chain (environment variables, shared config and
credentials files, `profile`); `endpoint_url` points at an S3-compatible service. botocore's
own retries are switched off: the retry wrapper (storage/wrappers.py) retries what classify()
marks retryable, so every backend follows one policy."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import botocore.exceptions as bx

from fastreg.errors import ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import (
    Listing,
    ObjectInfo,
    Positioned,
    TimedGetStore,
    check_range,
    in_thread,
    split_s3_url,
    unresolvable_host,
)
from fastreg.storage.s3read import S3Reader, ShortBody

MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 16 << 20
LIST_PAGE = 1000  # keys per ListObjectsV2 request (S3's maximum)
T = TypeVar("T")
_THROTTLE = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded",
             "TooManyRequestsException", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
_CREDENTIALS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


def classify(exc: BaseException, where: str) -> StorageError:
    """Translate a botocore/aiohttp/asyncio error into a StorageError with `retryable` set from
    the HTTP status and S3 error code (5xx, 429 and throttling codes retry; other 4xx never)."""
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            return ObjectNotFound(f"{where}: not found")
        if code == "NoSuchBucket":
            return StorageError(f"{where}: the bucket does not exist; create it first")
        if code in _CREDENTIALS or status == 403:
            return StorageError(f"{where}: access denied ({code or status}); check the AWS credentials "
                                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the remote's profile)")
        retryable = status >= 500 or status == 429 or code in _THROTTLE
        return StorageError(f"{where}: S3 error {code or status}: {err.get('Message', '')}".rstrip(": "),
                            retryable=retryable)
    if isinstance(exc, bx.NoCredentialsError):
        return StorageError(f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, or a profile with `fastreg remote modify NAME profile P`")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        if unresolvable_host(exc):  # a typo in endpoint_url: no retry helps
            return StorageError(f"{where}: the endpoint's host name does not resolve ({exc}); check endpoint_url")
        return StorageError(f"{where}: cannot connect to the S3 endpoint ({exc})", retryable=True)
    aiohttp = sys.modules.get("aiohttp")  # imported only once the aiobotocore client exists
    if isinstance(exc, bx.HTTPClientError | bx.ReadTimeoutError | bx.ResponseStreamingError
                  | asyncio.TimeoutError | ConnectionError) or (aiohttp and isinstance(exc, aiohttp.ClientError)):
        if unresolvable_host(exc):
            return StorageError(f"{where}: the host name does not resolve ({type(exc).__name__}: {exc})")
        return StorageError(f"{where}: connection error ({type(exc).__name__}: {exc})", retryable=True)
    if isinstance(exc, bx.BotoCoreError):
        return StorageError(f"{where}: {exc}")
    raise exc


class BufferReader(Positioned, io.IOBase):
    """A body for botocore that reads the caller's buffer in place: read() returns views of it.
    botocore hashes it for the signature in 1 MiB views and aiohttp sends it in 256 KiB views
    (it reads file bodies through the thread pool). A bytes body was wrapped in a BytesIO by
    botocore and every read copied into fresh memory; converting a pack to bytes copied it
    whole: with the page faults, a fifth of a push's CPU. Close it (it is a context manager)
    once the request is done: the buffer can then be resized again."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._size = len(self._view)
        self._pos = 0

    def read(self, size: int | None = -1) -> memoryview:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        start, self._pos = self._pos, max(self._pos, end)
        return self._view[start:end]

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(BufferError):  # a view of it still held somewhere: it goes with that
                self._view.release()
        super().close()


class S3Store(TimedGetStore):
    def __init__(self, url: str, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, read_only: bool = False, connections: int = 32) -> None:
        bucket, prefix = split_s3_url(url)
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.read_only = read_only
        self.connections = connections
        self._endpoint = endpoint_url
        self._region = region
        self._profile = profile
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._reader: S3Reader | None = None
        self._reader_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    async def _open_client(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from aiobotocore.config import AioConfig
                    from aiobotocore.session import AioSession

                    session = AioSession(profile=self._profile) if self._profile else AioSession()
                    config = AioConfig(
                        retries={"total_max_attempts": 1},  # the retry wrapper retries
                        max_pool_connections=max(self.connections, 10),
                        connect_timeout=10,
                        read_timeout=120,
                        signature_version="s3v4",
                        # Integrity is fastreg's own: every chunk and file is verified against its
                        # XXH3-128 on download, and an upload over plain HTTP is SHA-256 signed. The
                        # extra CRC32 per request (botocore's default) costs CPU for nothing here.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    )
                    stack = contextlib.AsyncExitStack()
                    try:
                        self._client = await stack.enter_async_context(session.create_client(
                            "s3", endpoint_url=self._endpoint, region_name=self._region or "us-east-1",
                            config=config))
                    except bx.ProfileNotFound as exc:
                        raise StorageError(f"{self.url}: AWS profile {self._profile!r} not found ({exc})") from None
                    self._stack = stack
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _reader_now(self) -> S3Reader:
        """The signed-GET reader (created in a worker thread: the credential chain may ask the
        instance metadata service)."""
        with self._reader_lock:
            if self._reader is None:
                try:
                    self._reader = S3Reader(self.bucket, self._endpoint, self._region, self._profile, self.connections)
                except bx.ProfileNotFound as exc:
                    raise StorageError(f"{self.url}: AWS profile {self._profile!r} not found ({exc})") from None
            return self._reader

    async def _read(self, key: str, start: int | None, end: int | None,
                    buf: bytearray | None) -> tuple[int, bytes | memoryview, float]:
        return await self._in_reader(key, lambda reader: reader.get(self._key(key), start, end, buf))

    async def _in_reader(self, key: str, call: Callable[[S3Reader], T]) -> T:
        """call(reader) in the store's threads, its errors classified as for a client."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(self.connections, 4), thread_name_prefix="fastreg-s3get")
        try:
            return await in_thread(self._pool, lambda: call(self._reader_now()))
        except StorageError:
            raise
        except ShortBody as exc:
            raise StorageError(f"{self.where(key)}: the response ended early ({exc})", retryable=True) from None
        except Exception as exc:
            if type(exc).__module__.startswith("urllib3"):  # the body stream broke (reset, incomplete read)
                raise StorageError(f"{self.where(key)}: connection error ({type(exc).__name__}: {exc})",
                                   retryable=True) from None
            raise classify(exc, self.where(key)) from None

    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        """The bytes, and the seconds until the response headers arrived."""
        check_range(start, end)
        if start is not None and end is not None and end == start:
            return b"", 0.0
        status, data, ttfb = await self._read(key, start, end, None)
        if start is not None and status == 200:
            data = data[start:end]  # a server that ignored Range sent the whole object
        return bytes(data), ttfb

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        """The body is read into buf by the socket (no copy through a bytes object)."""
        check_range(start, end)
        if end == start:
            return memoryview(buf)[:0]
        status, data, _ = await self._read(key, start, end, buf)
        view = memoryview(data)
        return view[start:end] if status == 200 else view

    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        c = await self._open_client()
        try:
            if len(data) > MULTIPART_THRESHOLD:
                await self._multipart(c, self._key(key), data)
            else:
                with BufferReader(data) as body:
                    await c.put_object(Bucket=self.bucket, Key=self._key(key), Body=body)
        except StorageError:
            raise
        except Exception as exc:
            raise classify(exc, self.where(key)) from None

    async def _multipart(self, c: Any, key: str, data: bytes | bytearray | memoryview) -> None:
        up = await c.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = up["UploadId"]
        view = memoryview(data)
        try:
            async def part(n: int, off: int) -> dict[str, Any]:
                with BufferReader(view[off:off + PART_SIZE]) as body:
                    r = await c.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                            Body=body)
                return {"ETag": r["ETag"], "PartNumber": n}

            parts = await asyncio.gather(*(part(i + 1, off) for i, off in enumerate(range(0, len(data), PART_SIZE))))
            await c.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": list(parts)})
        except BaseException:
            with contextlib.suppress(Exception):
                await c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    async def exists(self, key: str) -> bool:
        """One listing with the key as prefix, through the signed reader like GETs: a push with
        nothing to upload asks whether its snapshot is there without importing an S3 client."""
        return any(o.key == key for o in await self.list(key))

    async def list(self, prefix: str) -> Listing:
        """Through the signed reader, like GETs (no S3 client: see s3read.py)."""
        found = await self._in_reader(prefix, lambda reader: reader.list(self._key(prefix), LIST_PAGE))
        return [ObjectInfo(key[len(self.prefix):], size, mtime) for key, size, mtime in found]

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        c = await self._open_client()
        try:
            await c.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            err = classify(exc, self.where(key))
            if not isinstance(err, ObjectNotFound):
                raise err from None

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

"""Google Cloud Storage as a remote, `gs://BUCKET/PREFIX`, through the GCS JSON API over aiohttp
(the engine's own HTTP client: one connection pool per store, no second event loop, no SDK).

    GET    /storage/v1/b/BUCKET/o/NAME?alt=media      (Range for a part)
    POST   /upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME
    GET    /storage/v1/b/BUCKET/o?prefix=P&pageToken=T (listing, 1,000 a page)
    DELETE /storage/v1/b/BUCKET/o/NAME

Puts replace, as S3's do: every object fastreg writes is named by its content or is a unique
index segment (a second writer of a key writes the same bytes), except the remote's marker and
the root hints that remote gc rewrites, which must replace. Many writers need no lock; two
writes of one object within a second (GCS allows one) get 429, which the retry wrapper retries.

Credentials, as Google's own tools find them: `credentialpath` (a service account's JSON key
file, DVC's option name), else application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
`gcloud auth application-default login`, the metadata server on Google Cloud), through
google-auth (`pip install 'fastreg[gcs]'`); no credentials found: anonymous requests (a public
bucket). `endpoint_url` (or the emulator convention `STORAGE_EMULATOR_HOST`) points it at an
emulator or a private endpoint: then requests are anonymous unless `credentialpath` is given.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from fastreg.errors import DependencyError, ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import Listing, ObjectInfo, TimedGetStore, check_range
from fastreg.storage.http import body_into, connection_error

GOOGLE = "https://storage.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


def split_gs_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of gs://BUCKET[/PREFIX]; a StorageError for anything else."""
    bucket, _, prefix = url[len("gs://"):].partition("/") if url.startswith("gs://") else ("", "", "")
    if len(bucket) < 3 or any(c.isspace() or c in "\\?#/" for c in bucket):
        raise StorageError(f"{url}: not a GCS URL (gs://BUCKET/PREFIX, bucket names have 3+ characters)")
    return bucket, prefix.strip("/")


class _Token:
    """An OAuth2 access token from google-auth, refreshed (in a thread) before it expires; None
    for anonymous requests."""

    def __init__(self, credentialpath: str | None, emulator: bool) -> None:
        self._creds: Any = None
        self._lock = asyncio.Lock()
        if emulator and not credentialpath:
            return  # an emulator takes anonymous requests
        try:
            import google.auth
            import google.auth.exceptions
            from google.oauth2 import service_account
        except ImportError:
            if credentialpath or not emulator:
                raise DependencyError("a gs:// remote needs google-auth for its credentials: "
                                      "pip install 'fastreg[gcs]'") from None
            return
        try:
            if credentialpath:
                self._creds = service_account.Credentials.from_service_account_file(
                    os.path.expanduser(credentialpath), scopes=[SCOPE])
            else:
                self._creds, _ = google.auth.default(scopes=[SCOPE])
        except google.auth.exceptions.DefaultCredentialsError:
            self._creds = None  # none on this machine: anonymous (a public bucket reads)
        except (OSError, ValueError) as exc:
            raise StorageError(f"GCS credentials {credentialpath}: {exc}") from None

    async def header(self) -> dict[str, str]:
        if self._creds is None:
            return {}
        async with self._lock:
            if not self._creds.valid:
                import google.auth.transport.requests

                try:
                    await asyncio.to_thread(self._creds.refresh, google.auth.transport.requests.Request())
                except Exception as exc:  # google-auth's RefreshError, transport errors
                    raise StorageError(f"GCS credentials could not be refreshed ({type(exc).__name__}: {exc})") \
                        from None
            return {"Authorization": f"Bearer {self._creds.token}"}


def classify(status: int, body: bytes, where: str) -> StorageError:
    if status == 404:
        return ObjectNotFound(f"{where}: not found")
    detail = body[:300].decode("utf-8", "replace").strip()
    if status in (401, 403):
        return StorageError(f"{where}: HTTP {status}: access denied; check the remote's credentials "
                            f"(credentialpath, GOOGLE_APPLICATION_CREDENTIALS) ({detail})")
    return StorageError(f"{where}: HTTP {status} ({detail})", retryable=status >= 500 or status in (408, 429))


class GCSStore(TimedGetStore):
    connections = 16

    def __init__(self, url: str, endpoint_url: str | None = None, credentialpath: str | None = None,
                 read_only: bool = False, connections: int = 16) -> None:
        self.bucket, self.prefix = split_gs_url(url)
        self.url = f"gs://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        endpoint = endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST") or GOOGLE
        if "://" not in endpoint:
            endpoint = "http://" + endpoint  # STORAGE_EMULATOR_HOST is often host:port
        self.endpoint = endpoint.rstrip("/")
        self.read_only = read_only
        self.connections = connections
        self._token = _Token(credentialpath, self.endpoint != GOOGLE)
        self._session: aiohttp.ClientSession | None = None

    # -- plumbing ----------------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _object_url(self, key: str) -> str:
        return f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o/{quote(self._name(key), safe='')}"

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
                connector=aiohttp.TCPConnector(limit=max(self.connections, 4)),
                auto_decompress=False,  # bytes must reach the digest check exactly as stored
            )
        return self._session

    async def _request(self, method: str, url: str, where: str, **kw: Any) -> tuple[int, bytes, Any]:
        headers = {**kw.pop("headers", {}), **await self._token.header()}
        try:
            async with self._open_session().request(method, url, headers=headers, **kw) as resp:
                return resp.status, await resp.read(), resp.headers
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    # -- reads -------------------------------------------------------------------------------------
    async def get_timed(self, key: str, start: int | None = None, end: int | None = None) -> tuple[bytes, float]:
        check_range(start, end)
        if start is not None and end is not None and end == start:
            return b"", 0.0
        headers = {}
        if start is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        where = self.where(key)
        t0 = time.perf_counter()
        try:
            async with self._open_session().get(self._object_url(key), params={"alt": "media"},
                                                headers={**headers, **await self._token.header()}) as resp:
                ttfb = time.perf_counter() - t0
                if resp.status == 416:
                    return b"", ttfb
                data = await resp.read()
                if resp.status not in (200, 206):
                    raise classify(resp.status, data, where)
                if start is not None and resp.status == 200:
                    data = data[start:end]
                return data, ttfb
        except StorageError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    async def get_into(self, key: str, start: int, end: int, buf: bytearray) -> memoryview:
        check_range(start, end)
        if end == start:
            return memoryview(buf)[:0]
        where = self.where(key)
        headers = {"Range": f"bytes={start}-{end - 1}", **await self._token.header()}
        try:
            async with self._open_session().get(self._object_url(key), params={"alt": "media"},
                                                headers=headers) as resp:
                if resp.status == 416:
                    return memoryview(buf)[:0]
                if resp.status not in (200, 206):
                    raise classify(resp.status, await resp.read(), where)
                return await body_into(resp, start, end, buf)
        except StorageError:
            raise
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise connection_error(exc, where) from None

    async def exists(self, key: str) -> bool:
        where = self.where(key)
        status, body, _ = await self._request("GET", self._object_url(key), where, params={"fields": "name"})
        if status == 200:
            return True
        if status == 404:
            return False
        raise classify(status, body, where)

    async def list(self, prefix: str) -> Listing:
        where = self.where(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        out: Listing = []
        token: str | None = None
        while True:
            params = {"prefix": base + prefix, "maxResults": "1000", "fields": "items(name,size,updated),nextPageToken"}
            if token:
                params["pageToken"] = token
            status, body, _ = await self._request(
                "GET", f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o", where, params=params)
            if status == 404:
                raise self._no_bucket()
            if status != 200:
                raise classify(status, body, where)
            import json

            doc = json.loads(body or b"{}")
            for item in doc.get("items", []):
                name = item["name"]
                when = datetime.fromisoformat(item.get("updated", "1970-01-01T00:00:00Z").replace("Z", "+00:00"))
                out.append(ObjectInfo(name[len(base):], int(item.get("size", 0)), when.timestamp()))
            token = doc.get("nextPageToken")
            if not token:
                break
        out.sort(key=lambda o: o.key)
        return out

    # -- writes ------------------------------------------------------------------------------------
    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        where = self.where(key)
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o"
        params = {"uploadType": "media", "name": self._name(key)}
        body_io = io.BytesIO(data if isinstance(data, bytes) else bytes(data))  # streamed, never one big write
        status, body, _ = await self._request("POST", url, where, params=params, data=body_io,
                                              headers={"Content-Type": "application/octet-stream"})
        if status in (200, 201):
            return
        if status == 404:
            raise self._no_bucket()
        raise classify(status, body, where)

    def _no_bucket(self) -> StorageError:
        return StorageError(f"gs://{self.bucket}: no such bucket at {self.endpoint} (create it first, or check the "
                            "remote's URL and endpoint_url)")

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        where = self.where(key)
        status, body, _ = await self._request("DELETE", self._object_url(key), where)
        if status in (200, 204, 404):
            return
        raise classify(status, body, where)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

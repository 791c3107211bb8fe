"""Signed S3 GETs (objects, and listings) without an S3 client: botocore's SigV4 signer and its
urllib3 session, in threads of the store's own.

Why not aiobotocore for reads: importing aiobotocore + aiohttp and creating the client (which
loads S3's whole service model) costs ~360 ms on this machine, more than everything else a
one-image `fastreg get` does (~110 ms: Git, tree nodes, the image). A GET needs none of the service
model: a URL, a signature and a status code. Throughput is the same (1 GB of 4 MiB ranged GETs
from SeaweedFS: ~1 GB/s either way, the server is the limit), and the body is read straight into
the caller's buffer (`readinto`), with the GIL released while the socket fills it. Listing is a
GET too (ListObjectsV2): a push or `status --remote` with nothing to upload then never imports
aiobotocore. Writes and deletes stay on aiobotocore (storage/s3.py).

Credentials come from botocore's standard chain (environment, shared files, profile, instance
metadata), the CA bundle from AWS_CA_BUNDLE, proxies from the environment, as for a client.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import botocore.exceptions as bx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import URLLib3Session
from botocore.utils import get_environ_proxies

_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
READ_BLOCK = 1 << 20


def _credentials(profile: str | None) -> Any:
    """botocore's credential chain; keys in the environment come first in that chain, and are
    then taken without building a botocore Session (~30 ms of imports a one-file `get` skips)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if profile is None and key and secret:
        from botocore.credentials import Credentials

        return Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN"), method="env")
    from botocore.session import Session

    return Session(profile=profile).get_credentials()


class ShortBody(Exception):
    """The connection ended before Content-Length bytes arrived."""


class S3Reader:
    """Blocking signed GETs (call from worker threads). Raises botocore errors for the S3
    store's classifier: ClientError built from the S3 error response, or the connection error."""

    def __init__(self, bucket: str, endpoint_url: str | None, region: str | None, profile: str | None,
                 connections: int) -> None:
        self.bucket = bucket
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._region_known = bool(region)
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._creds: Any = _credentials(profile)  # None: anonymous (unsigned) requests
        base = self._base()
        self._http = URLLib3Session(verify=os.environ.get("AWS_CA_BUNDLE") or True,
                                    proxies=get_environ_proxies(base), timeout=(10, 120),
                                    max_pool_connections=max(connections, 10))

    def _base(self) -> str:
        if self._endpoint:
            return f"{self._endpoint}/{self.bucket}"
        if _DNS_BUCKET.match(self.bucket):
            return f"https://{self.bucket}.s3.{self.region}.amazonaws.com"
        return f"https://s3.{self.region}.amazonaws.com/{self.bucket}"

    def get(self, key: str, start: int | None, end: int | None,
            buf: bytearray | None = None) -> tuple[int, bytes | memoryview, float]:
        """(HTTP status, body, seconds to the response headers). With buf (and a range), the
        body is read into buf and a view of it returned. Status 416 gives an empty body; 200 for
        a ranged request means the server sent the whole object (the caller slices)."""
        for attempt in range(2):
            headers = {}
            if start is not None:
                headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
            t0 = time.perf_counter()
            resp = self._send(f"/{quote(key, safe='/~')}", headers)
            ttfb = time.perf_counter() - t0
            raw = resp.raw
            try:
                status = resp.status_code
                if status in (200, 206):
                    return status, self._body(raw, resp.headers, buf if status == 206 else None), ttfb
                if status == 416:
                    return status, b"", ttfb
                body = raw.read()
            finally:
                raw.release_conn()
            if attempt == 0 and self._moved(resp):
                continue
            raise _client_error(status, body, "GetObject")
        raise AssertionError("unreachable")

    def list(self, prefix: str, page: int = 1000) -> list[tuple[str, int, float]]:
        """(key, size, mtime) of every object under prefix: ListObjectsV2, `page` keys a request."""
        out: list[tuple[str, int, float]] = []
        token: str | None = None
        attempt = 0
        while True:
            params = {"list-type": "2", "max-keys": str(page), "prefix": prefix}
            if token is not None:
                params["continuation-token"] = token
            query = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
            resp = self._send(f"?{query}", {})
            try:
                body = resp.raw.read()
            finally:
                resp.raw.release_conn()
            if resp.status_code != 200:
                if attempt == 0 and token is None and self._moved(resp):
                    attempt += 1
                    continue
                raise _client_error(resp.status_code, body, "ListObjectsV2")
            root = ElementTree.fromstring(body)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for item in root.iter(f"{ns}Contents"):
                when = datetime.fromisoformat(item.findtext(f"{ns}LastModified", "").replace("Z", "+00:00"))
                out.append((item.findtext(f"{ns}Key", ""), int(item.findtext(f"{ns}Size", "0")), when.timestamp()))
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated", "false") != "true" or not token:
                return out

    def _send(self, path: str, headers: dict[str, str]) -> Any:
        """A signed GET of the bucket's URL + path (a key, or ?query), body not read yet."""
        req = AWSRequest(method="GET", url=f"{self._base()}{path}", headers=headers)
        if self._creds is not None:
            S3SigV4Auth(self._creds.get_frozen_credentials(), "s3", self.region).add_auth(req)
        prepared = req.prepare()
        prepared.stream_output = True
        return self._http.send(prepared)

    def _moved(self, resp: Any) -> bool:
        """The bucket lives in another region than the one asked (and none was configured): ask
        there from now on. True when the request should be sent again."""
        moved = resp.headers.get("x-amz-bucket-region")
        if moved and moved != self.region and not self._endpoint and not self._region_known:
            self.region = moved
            return True
        return False

    @staticmethod
    def _body(raw: Any, headers: Any, buf: bytearray | None) -> bytes | memoryview:
        length = headers.get("content-length")
        expected = int(length) if length is not None else None
        if buf is None or expected is None or expected > len(buf):
            data = raw.read()
            if expected is not None and len(data) != expected:
                raise ShortBody(f"got {len(data)} of {expected} bytes")
            return bytes(data)
        view = memoryview(buf)[:expected]
        # urllib3's readinto reads into a temporary bytes and copies it, holding the GIL; the
        # http.client response under it reads from the socket straight into the buffer, with the
        # GIL released (1 GB from SeaweedFS: 0.74 -> 0.50 CPU-s). Only for a plain body.
        fp = getattr(raw, "_fp", None)
        readinto = getattr(fp, "readinto", None)
        if readinto is None or headers.get("content-encoding"):
            readinto = raw.readinto
        got = 0
        while got < expected:
            n = readinto(view[got : got + READ_BLOCK])
            if not n:
                raise ShortBody(f"got {got} of {expected} bytes")
            got += n
        return view

    def close(self) -> None:
        self._http.close()


def _client_error(status: int, body: bytes, operation: str) -> bx.ClientError:
    """The S3 error document (<Error><Code>..</Code><Message>..</Message></Error>) as the
    ClientError a botocore client would raise, so one classifier serves both paths."""
    error = {"Code": str(status), "Message": ""}
    try:
        for el in ElementTree.fromstring(body):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag in error:
                error[tag] = el.text or ""
    except ElementTree.ParseError:
        pass  # no error document (a HEAD-like empty body, a proxy's HTML page): the status says it
    return bx.ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

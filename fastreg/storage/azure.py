"""Azure Blob Storage as a remote, `azure://CONTAINER/PREFIX` (DVC's spelling), through
azure-storage-blob's asyncio client (its transport is aiohttp, the engine's own HTTP client;
the optional extra `fastreg[azure]` installs it). Its own retries are off: the retry wrapper
retries what classify() marks retryable, as for every backend.

The account and credentials, as Azure's tools and DVC take them: the remote's
`connection_string`, else `account_name` with `account_key` or `sas_token`, else with
DefaultAzureCredential when azure-identity is installed (environment, managed identity, the
Azure CLI's login), else anonymous (a public container); the environment's
AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY stand in for the
options. `endpoint_url` points it at an emulator (Azurite) or a private endpoint. Secrets never
appear in messages.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from fastreg.errors import DependencyError, ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import Listing, ObjectInfo, Store, check_range, unresolvable_host

#: The options that hold secrets: written to config.local, never shown.
SECRETS = ("connection_string", "account_key", "sas_token")


def split_azure_url(url: str) -> tuple[str, str, str | None]:
    """(container, prefix, account) of azure://CONTAINER[/PREFIX] or of the netloc form
    azure://CONTAINER@ACCOUNT[.blob.core.windows.net]/PREFIX; a StorageError for anything else."""
    netloc, _, prefix = url[len("azure://"):].partition("/") if url.startswith("azure://") else ("", "", "")
    container, _, host = netloc.partition("@")
    account = host.split(".", 1)[0] if host else None
    if host and (not account or not account.isalnum() or not account.islower()
                 or host not in (account, f"{account}.blob.core.windows.net")):
        raise StorageError(f"{url}: not an Azure URL (azure://CONTAINER@ACCOUNT/PREFIX takes a storage account "
                           "name of lowercase letters and digits)")
    if not 3 <= len(container) <= 63 or not all(c.islower() or c.isdigit() or c == "-" for c in container) \
            or container.startswith("-") or "--" in container:
        raise StorageError(f"{url}: not an Azure URL (azure://CONTAINER/PREFIX; container names have 3 to 63 "
                           "lowercase letters, digits and single '-')")
    return container, prefix.strip("/"), account


def _sdk() -> Any:
    try:
        from azure.storage.blob import aio
    except ImportError:
        raise DependencyError("an azure:// remote needs azure-storage-blob: pip install 'fastreg[azure]'") from None
    return aio


class AzureStore(Store):
    connections = 16

    def __init__(self, url: str, account_name: str | None = None, account_key: str | None = None,
                 sas_token: str | None = None, connection_string: str | None = None,
                 endpoint_url: str | None = None, read_only: bool = False, connections: int = 16) -> None:
        self.container, self.prefix, url_account = split_azure_url(url)
        self.url = url.rstrip("/")
        account_name = account_name or url_account
        self.read_only = read_only
        self.connections = connections
        self._aio = _sdk()
        env_conn = None if account_name else os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        self._conn_str = connection_string or env_conn
        self._account = account_name or os.environ.get("AZURE_STORAGE_ACCOUNT")
        self._key = account_key or (os.environ.get("AZURE_STORAGE_KEY") if not sas_token else None)
        self._sas = sas_token
        self._endpoint = endpoint_url
        if not self._conn_str and not self._account:
            raise StorageError(f"{self.url}: no Azure account: set the remote's account_name (and account_key or "
                               "sas_token), or connection_string, or AZURE_STORAGE_CONNECTION_STRING")
        self._client: Any = None
        self._credential: Any = None

    def _container(self) -> Any:
        if self._client is None:
            kw: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 120}
            if self._conn_str:
                try:
                    self._client = self._aio.ContainerClient.from_connection_string(self._conn_str, self.container,
                                                                                    **kw)
                except ValueError:  # its message may quote the secret: never shown
                    raise StorageError(f"{self.url}: the connection string does not parse (the remote's "
                                       "connection_string, or AZURE_STORAGE_CONNECTION_STRING)") from None
            else:
                account_url = (self._endpoint.rstrip("/") if self._endpoint
                               else f"https://{self._account}.blob.core.windows.net")
                credential: Any = None
                if self._key:
                    credential = {"account_name": self._account, "account_key": self._key}
                elif self._sas:
                    credential = self._sas
                else:
                    try:
                        from azure.identity.aio import DefaultAzureCredential
                    except ImportError:
                        DefaultAzureCredential = None  # anonymous: a public container
                    if DefaultAzureCredential is not None:
                        credential = self._credential = DefaultAzureCredential()
                self._client = self._aio.ContainerClient(account_url, self.container, credential=credential, **kw)
        return self._client

    def _name(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _failed(self, exc: BaseException, where: str) -> StorageError:
        from azure.core import exceptions as ax

        if isinstance(exc, ax.ResourceNotFoundError):
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                return StorageError(f"{self.url}: no such container {self.container!r} in the account (create it "
                                    "first, or check the remote's URL and account)")
            return ObjectNotFound(f"{where}: not found")
        if isinstance(exc, ax.ClientAuthenticationError) or getattr(exc, "status_code", None) in (401, 403):
            return StorageError(f"{where}: access denied (HTTP {getattr(exc, 'status_code', '?')}); check the "
                                "remote's account_key, sas_token or connection_string")
        if isinstance(exc, ax.HttpResponseError):
            status = exc.status_code or 0
            return StorageError(f"{where}: HTTP {status} ({exc.reason})",
                                retryable=status >= 500 or status in (408, 429))
        gone = unresolvable_host(exc)
        return StorageError(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                            + ("; the host name does not resolve" if gone else ""), retryable=not gone)

    async def _call(self, where: str, op: Any) -> Any:
        from azure.core import exceptions as ax

        try:
            return await op(self._container())
        except StorageError:
            raise
        except (ax.AzureError, OSError, TimeoutError) as exc:
            raise self._failed(exc, where) from None

    # -- reads -------------------------------------------------------------------------------------
    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        check_range(start, end)
        if start is not None and end is not None and end == start:
            return b""
        from azure.core import exceptions as ax

        async def read(c: Any) -> bytes:
            try:
                stream = await c.download_blob(self._name(key), offset=start,
                                               length=None if end is None else end - (start or 0))
            except ax.HttpResponseError as exc:
                if exc.status_code == 416:
                    return b""  # a range at or past the end
                raise
            return bytes(await stream.readall())

        return await self._call(self.where(key), read)  # type: ignore[no-any-return]

    async def exists(self, key: str) -> bool:
        return bool(await self._call(self.where(key), lambda c: c.get_blob_client(self._name(key)).exists()))

    async def list(self, prefix: str) -> Listing:
        base = f"{self.prefix}/" if self.prefix else ""

        async def walk(c: Any) -> Listing:
            out = [ObjectInfo(b.name[len(base):], b.size or 0, b.last_modified.timestamp() if b.last_modified else 0.0)
                   async for b in c.list_blobs(name_starts_with=base + prefix)]
            out.sort(key=lambda o: o.key)
            return out

        return await self._call(self.where(prefix), walk)  # type: ignore[no-any-return]

    # -- writes ------------------------------------------------------------------------------------
    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        with warnings.catch_warnings():
            # The SDK hands aiohttp each block as one bytes body; aiohttp's note that a big one is
            # written in one go is what this store wants (one request per pack).
            warnings.filterwarnings("ignore", message="Sending a large body", category=ResourceWarning)
            await self._call(self.where(key), lambda c: c.upload_blob(self._name(key), bytes(data), overwrite=True,
                                                                         max_concurrency=1))

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        from azure.core import exceptions as ax

        async def remove(c: Any) -> None:
            try:
                await c.delete_blob(self._name(key))
            except ax.ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) == "ContainerNotFound":
                    raise
        await self._call(self.where(key), remove)

    async def close(self) -> None:
        client, cred = self._client, self._credential
        self._client = self._credential = None
        if client is not None:
            await client.close()
        if cred is not None:
            await cred.close()

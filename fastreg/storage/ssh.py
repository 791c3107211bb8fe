"""An SSH server as a remote, `ssh://[USER@]HOST[:PORT]/PATH`, through SFTP with asyncssh (an
asyncio SSH client: one connection and one SFTP session per store, its requests pipelined on
the one channel, no thread per request). The optional extra `fastreg[ssh]` installs it.

Each object is a file under PATH (PATH is absolute on the server, as DVC reads such URLs). A put
writes a temp name in the object's folder and renames it into place (the `posix-rename`
extension, which replaces, where the server has it; else remove and rename), so a reader never
sees a partial object and a crash leaves only a temp file, which `list` skips.

Credentials as OpenSSH finds them: `~/.ssh/config` (Host entries: HostName, User, Port,
IdentityFile), the SSH agent, the default keys, or the remote's `keyfile`, `user` and `port`
options (DVC's names). The server's host key must be in `~/.ssh/known_hosts`: an unknown key is
an error that says how to accept it.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import warnings
from typing import Any
from urllib.parse import unquote, urlsplit

from fastreg.errors import DependencyError, ObjectNotFound, ReadOnlyStore, StorageError
from fastreg.storage.base import Listing, ObjectInfo, Store, check_range, unresolvable_host


def _asyncssh() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cryptography's deprecation notes about DSA, at import
            import asyncssh
    except ImportError:
        raise DependencyError("an ssh:// remote needs asyncssh: pip install 'fastreg[ssh]'") from None
    return asyncssh


def split_ssh_url(url: str) -> tuple[str | None, str, int | None, str]:
    """(user, host, port, absolute path) of ssh://[USER@]HOST[:PORT]/PATH."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "ssh" or not parts.hostname or port == -1 or not parts.path.strip("/"):
        raise StorageError(f"{url}: not an SSH URL (ssh://[USER@]HOST[:PORT]/PATH, PATH on the server)")
    return (unquote(parts.username) if parts.username else None, parts.hostname, port,
            "/" + unquote(parts.path).strip("/"))


class SSHStore(Store):
    connections = 8

    def __init__(self, url: str, user: str | None = None, port: int | str | None = None,
                 keyfile: str | None = None, read_only: bool = False, connections: int = 8) -> None:
        url_user, self.host, url_port, self.root = split_ssh_url(url)
        self.user = url_user or user
        self.port = url_port or (int(port) if port else None)
        self.keyfile = os.path.expanduser(keyfile) if keyfile else None
        self.read_only = read_only
        self.connections = connections
        self.url = url.rstrip("/")
        self._ssh = _asyncssh()
        self._conn: Any = None
        self._sftp: Any = None
        self._lock = asyncio.Lock()

    # -- plumbing ----------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad key {key!r}")
        return posixpath.join(self.root, key)

    async def _client(self) -> Any:
        async with self._lock:
            if self._sftp is None:
                ssh = self._ssh
                opts: dict[str, Any] = {}
                if self.user:
                    opts["username"] = self.user
                if self.port:
                    opts["port"] = self.port
                if self.keyfile:
                    opts["client_keys"] = [self.keyfile]
                where = f"{self.host}" + (f":{self.port}" if self.port else "")
                try:
                    self._conn = await asyncio.wait_for(ssh.connect(self.host, **opts), 30)
                    self._sftp = await self._conn.start_sftp_client()
                except ssh.HostKeyNotVerifiable:
                    keyscan = f"ssh-keyscan {'-p ' + str(self.port) + ' ' if self.port else ''}{self.host}"
                    raise StorageError(f"{self.url}: the host key of {where} is not in ~/.ssh/known_hosts; check its "
                                       f"fingerprint with the server's owner, then accept it: `{keyscan} >> "
                                       "~/.ssh/known_hosts` (or connect once with ssh)") from None
                except ssh.PermissionDenied:
                    raise StorageError(f"{self.url}: permission denied for {self.user or 'the default user'} at "
                                       f"{where}; check the remote's user and keyfile, ~/.ssh/config and the SSH "
                                       "agent") from None
                except (OSError, TimeoutError, ssh.Error) as exc:
                    raise self._failed(exc, self.url) from None
            return self._sftp

    def _failed(self, exc: BaseException, where: str) -> StorageError:
        ssh = self._ssh
        if isinstance(exc, ssh.SFTPNoSuchFile | FileNotFoundError):
            return ObjectNotFound(f"{where}: not found")
        if isinstance(exc, ssh.SFTPPermissionDenied | PermissionError):
            return StorageError(f"{where}: permission denied on the server")
        if isinstance(exc, ssh.SFTPFailure) and "space" in str(exc).lower():
            return StorageError(f"{where}: the server is out of space ({exc})")
        gone = unresolvable_host(exc)
        if isinstance(exc, ssh.DisconnectError | ssh.ConnectionLost | ConnectionError):
            # the connection dropped: the next request connects again (the retry wrapper retries)
            conn, self._sftp, self._conn = self._conn, None, None
            if conn is not None:
                conn.abort()
        return StorageError(f"{where}: {type(exc).__name__}: {exc}" + ("; the host name does not resolve" if gone
                                                                       else ""), retryable=not gone)

    async def _do(self, where: str, op: Any) -> Any:
        sftp = await self._client()
        try:
            return await op(sftp)
        except StorageError:
            raise
        except (OSError, self._ssh.Error) as exc:
            raise self._failed(exc, where) from None

    # -- reads -------------------------------------------------------------------------------------
    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        check_range(start, end)
        if start is not None and end is not None and end == start:
            return b""

        async def read(sftp: Any) -> bytes:
            async with sftp.open(self._path(key), "rb") as f:
                if start:
                    await f.seek(start)
                data = await (f.read() if end is None else f.read(end - (start or 0)))
                return bytes(data)

        return await self._do(self.where(key), read)  # type: ignore[no-any-return]

    async def exists(self, key: str) -> bool:
        return bool(await self._do(self.where(key), lambda sftp: sftp.isfile(self._path(key))))

    async def list(self, prefix: str) -> Listing:
        base = posixpath.join(self.root, prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        out: Listing = []

        async def walk(sftp: Any, folder: str) -> None:
            try:
                entries = [e async for e in sftp.scandir(folder)]
            except self._ssh.SFTPNoSuchFile:
                return
            subdirs = []
            for e in entries:
                name = e.filename
                if name in (".", ".."):
                    continue
                path = posixpath.join(folder, name)
                if e.attrs.type == self._ssh.FILEXFER_TYPE_DIRECTORY:
                    subdirs.append(path)
                elif name.startswith(".") and name.endswith(".tmp"):
                    continue  # a writer's temp file
                else:
                    key = posixpath.relpath(path, self.root)
                    if key.startswith(prefix):
                        out.append(ObjectInfo(key, e.attrs.size or 0, float(e.attrs.mtime or 0)))
            await asyncio.gather(*(walk(sftp, d) for d in subdirs))

        await self._do(self.where(prefix), lambda sftp: walk(sftp, base))
        out.sort(key=lambda o: o.key)
        return out

    # -- writes ------------------------------------------------------------------------------------
    async def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")
        final = self._path(key)
        tmp = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.{os.urandom(6).hex()}.tmp")

        async def write(sftp: Any) -> None:
            await sftp.makedirs(posixpath.dirname(final), exist_ok=True)
            try:
                async with sftp.open(tmp, "wb") as f:
                    await f.write(bytes(data))
                try:
                    await sftp.posix_rename(tmp, final)
                except self._ssh.SFTPOpUnsupported:
                    try:
                        await sftp.remove(final)
                    except self._ssh.SFTPNoSuchFile:
                        pass
                    await sftp.rename(tmp, final)
            except BaseException:
                try:
                    await sftp.remove(tmp)
                except Exception:  # the first failure is the one to report
                    pass
                raise

        await self._do(self.where(key), write)

    async def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is configured read_only")

        async def remove(sftp: Any) -> None:
            try:
                await sftp.remove(self._path(key))
            except self._ssh.SFTPNoSuchFile:
                pass

        await self._do(self.where(key), remove)

    async def close(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            await conn.wait_closed()

"""Remotes as configured in .fastreg/config (committed) and .fastreg/config.local:

    [core]
    remote = "store"                 # the default remote
    [remote.store]
    url = "s3://bucket/registry"     # or gs://bucket/prefix, a local path, or http(s)://host/path (read-only)
    endpoint_url = "http://127.0.0.1:8333"
    credentialpath = "~/key.json"    # gs://: a service account's key file (else application default credentials)
    keyfile = "~/.ssh/id_ed25519"    # ssh://USER@HOST:PORT/PATH: the key (else ~/.ssh/config, the agent); user, port
    account_name = "myaccount"       # azure://CONTAINER/PREFIX; account_key, sas_token, connection_string: secrets,
                                     # always written to config.local and never shown
    region = "us-east-1"
    profile = "myprofile"
    read_only = false
    pack_size = "16M"
    gc_grace = 3600                  # remote gc leaves objects younger than this (seconds) alone
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreg.errors import ConfigError, StorageError, UsageError
from fastreg.repo import config as cfg
from fastreg.storage.base import Store, split_s3_url
from fastreg.storage.wrappers import DEFAULT_BUDGET as DEFAULT_RETRY_BUDGET
from fastreg.transfer.local_objects import LocalObjects
from fastreg.transfer.session import RemoteSession
from fastreg.transfer.session import open_session as transfer_session

if TYPE_CHECKING:
    from fastreg.repo.project import Project

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
OPTIONS = {"url", "endpoint_url", "region", "profile", "read_only", "pack_size", "jobs", "gc_grace", "retry_budget",
           "credentialpath", "keyfile", "user", "port", "account_name", "account_key", "sas_token",
           "connection_string"}
#: Options that hold secrets: `remote modify` writes them to config.local (never committed) and
#: nothing prints them.
SECRET_OPTIONS = ("account_key", "sas_token", "connection_string")
DEFAULT_PACK_SIZE = 16 << 20
DEFAULT_GC_GRACE = 3600


@dataclass(frozen=True, slots=True)
class Remote:
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.url.startswith("s3://"):
            return "s3"
        if self.url.startswith("gs://"):
            return "gs"
        if self.url.startswith("ssh://"):
            return "ssh"
        if self.url.startswith("azure://"):
            return "azure"
        if self.url.startswith(("http://", "https://")):
            return "http"
        return "local"

    @property
    def read_only(self) -> bool:
        return self.kind == "http" or bool(self.options.get("read_only", False))

    @property
    def pack_size(self) -> int:
        raw = self.options.get("pack_size", DEFAULT_PACK_SIZE)
        return parse_size(str(raw), f"remote.{self.name}.pack_size")

    @property
    def gc_grace(self) -> float:
        """Seconds that remote gc leaves new objects alone (a push in progress has not
        committed its index segment yet)."""
        raw = self.options.get("gc_grace", DEFAULT_GC_GRACE)
        if not isinstance(raw, int | float) or isinstance(raw, bool) or raw < 0:
            raise ConfigError(f"remote.{self.name}.gc_grace = {raw!r}: give seconds, e.g. 3600")
        return float(raw)

    @property
    def retry_budget(self) -> float:
        """Seconds a failing request keeps being retried (backing off) before the command fails."""
        raw = self.options.get("retry_budget", DEFAULT_RETRY_BUDGET)
        if not isinstance(raw, int | float) or isinstance(raw, bool) or raw < 0:
            raise ConfigError(f"remote.{self.name}.retry_budget = {raw!r}: give seconds, e.g. 60")
        return float(raw)

    def default_jobs(self) -> int:
        jobs = self.options.get("jobs")
        if isinstance(jobs, int) and jobs > 0:
            return jobs
        return {"s3": 16, "gs": 16, "azure": 16, "ssh": 8, "http": 16, "local": 4}[self.kind]


def parse_size(text: str, what: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text.upper())
    if not m:
        raise ConfigError(f"{what} = {text!r} is not a size (e.g. 16M)")
    n = int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
    if not (1 << 20) <= n <= (1 << 30):
        raise ConfigError(f"{what} must be between 1M and 1G")
    return n


def all_remotes(doc: dict[str, Any]) -> dict[str, Remote]:
    section = doc.get("remote", {})
    if not isinstance(section, dict):
        raise ConfigError("[remote] in .fastreg/config must be a table of remotes")
    out = {}
    for name, opts in section.items():
        if not isinstance(opts, dict) or not isinstance(opts.get("url"), str):
            raise ConfigError(f"remote {name!r} has no url; fix it with `fastreg remote modify {name} url URL`")
        out[name] = Remote(name, opts["url"], {k: v for k, v in opts.items() if k != "url"})
    return out


def default_name(doc: dict[str, Any]) -> str | None:
    core = doc.get("core", {})
    name = core.get("remote") if isinstance(core, dict) else None
    return name if isinstance(name, str) else None


def pick(doc: dict[str, Any], name: str | None, where: str = "this project") -> Remote:
    remotes = all_remotes(doc)
    if name is None:
        name = default_name(doc)
        if name is None:
            raise UsageError(f"{where} has no default remote; name one with -r NAME or set it with "
                             "`fastreg remote add -d NAME URL`")
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise UsageError(f"no remote named {name!r} in {where} (remotes: {known}); add it with "
                         f"`fastreg remote add {name} URL`")
    return remotes[name]


def open_store(remote: Remote, base: Path, jobs: int) -> Store:
    """The remote's Store, with retries and a concurrency limit of `jobs` requests."""
    from fastreg.storage.wrappers import LimitedStore, RetryingStore

    return LimitedStore(RetryingStore(open_backend(remote, base, jobs), budget=remote.retry_budget), jobs)


def open_backend(remote: Remote, base: Path, jobs: int) -> Store:
    """The remote's bare backend (no retries, no limit), sized for `jobs` connections."""
    store: Store
    if remote.kind == "s3":
        from fastreg.storage.s3 import S3Store

        store = S3Store(remote.url, endpoint_url=remote.options.get("endpoint_url"),
                        region=remote.options.get("region"), profile=remote.options.get("profile"),
                        read_only=remote.read_only, connections=jobs)
    elif remote.kind == "gs":
        from fastreg.storage.gcs import GCSStore

        store = GCSStore(remote.url, endpoint_url=remote.options.get("endpoint_url"),
                         credentialpath=remote.options.get("credentialpath"), read_only=remote.read_only,
                         connections=jobs)
    elif remote.kind == "ssh":
        from fastreg.storage.ssh import SSHStore

        store = SSHStore(remote.url, user=remote.options.get("user"), port=remote.options.get("port"),
                         keyfile=remote.options.get("keyfile"), read_only=remote.read_only, connections=jobs)
    elif remote.kind == "azure":
        from fastreg.storage.azure import AzureStore

        o = remote.options
        store = AzureStore(remote.url, account_name=o.get("account_name"), account_key=o.get("account_key"),
                           sas_token=o.get("sas_token"), connection_string=o.get("connection_string"),
                           endpoint_url=o.get("endpoint_url"), read_only=remote.read_only, connections=jobs)
    elif remote.kind == "http":
        from fastreg.storage.http import HTTPStore

        store = HTTPStore(remote.url, connections=jobs)
    else:
        from fastreg.storage.local import LocalStore

        path = Path(remote.url).expanduser()
        path = Path(os.path.normpath(path if path.is_absolute() else base / path))  # messages show a clean path
        store = LocalStore(path, read_only=remote.read_only)
    return store


# -- editing the config --------------------------------------------------------------------
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")


def check_url(url: str, option: str = "url") -> None:
    """A UsageError for a remote URL (or endpoint_url) that fastreg cannot use, so a typo is
    caught by `remote add`/`modify` instead of by the first push (or, for an unknown scheme such
    as gs://, by a push into a local folder named "gs:")."""
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else None
    host = url[m.end():].split("/", 1)[0] if m else ""
    if option == "endpoint_url":
        if scheme not in ("http", "https") or not host:
            raise UsageError(f"endpoint_url takes http(s)://HOST[:PORT], not {url!r}")
        return
    if not url.strip():
        raise UsageError("a remote URL cannot be empty")
    if scheme is None:
        return  # a local path
    if scheme == "s3":
        try:
            bucket, _ = split_s3_url(url)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise UsageError(f"{url}: {bucket!r} is not an S3 bucket name (3 to 63 lowercase letters, digits, "
                             "'.' and '-', starting and ending with a letter or digit)")
    elif scheme == "gs":
        from fastreg.storage.gcs import split_gs_url

        try:
            bucket, _ = split_gs_url(url)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
        if not _GS_BUCKET.fullmatch(bucket) or ".." in bucket:
            raise UsageError(f"{url}: {bucket!r} is not a GCS bucket name (3 to 63 lowercase letters, digits, "
                             "'.', '-' and '_', starting and ending with a letter or digit)")
    elif scheme == "ssh":
        from fastreg.storage.ssh import split_ssh_url

        try:
            split_ssh_url(url)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
    elif scheme == "azure":
        from fastreg.storage.azure import split_azure_url

        try:
            split_azure_url(url)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
    elif scheme in ("http", "https"):
        if not host:
            raise UsageError(f"{url}: no host in this URL (http(s)://HOST/PATH)")
    else:
        hint = "; for a local directory give its path" if scheme == "file" else ""
        raise UsageError(f"{url}: unsupported remote URL scheme '{scheme}://' (remotes are a local path, "
                         f"s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, azure://CONTAINER/PREFIX, "
                         f"ssh://[USER@]HOST[:PORT]/PATH or "
                         f"http(s)://HOST/PATH){hint}")


def _target(fastreg_dir: Path, local: bool) -> Path:
    return fastreg_dir / ("config.local" if local else "config")


def add(fastreg_dir: Path, name: str, url: str, default: bool, local: bool, force: bool = False) -> None:
    if not NAME.fullmatch(name):
        raise UsageError(f"invalid remote name {name!r}: use letters, digits, '-', '_' and '.'")
    path = _target(fastreg_dir, local)
    doc = cfg.read_toml(path)
    section = doc.setdefault("remote", {})
    if name in all_remotes(cfg.merged(fastreg_dir)) and not force:
        raise UsageError(f"remote {name!r} exists already; change it with `fastreg remote modify {name} url URL`")
    check_url(url)
    section[name] = {"url": url}
    if default:
        doc.setdefault("core", {})["remote"] = name
    cfg.write_toml(path, doc)


def modify(fastreg_dir: Path, name: str, option: str, value: str, local: bool, unset: bool = False) -> None:
    if option not in OPTIONS:
        raise UsageError(f"unknown remote option {option!r}; known: {', '.join(sorted(OPTIONS))}")
    if name not in all_remotes(cfg.merged(fastreg_dir)):
        raise UsageError(f"no remote named {name!r}; add it with `fastreg remote add {name} URL`")
    if option in SECRET_OPTIONS:
        local = True  # a secret is never committed
    path = _target(fastreg_dir, local)
    doc = cfg.read_toml(path)
    section = doc.setdefault("remote", {}).setdefault(name, {})
    if unset:
        section.pop(option, None)
    elif option == "read_only":
        if value.lower() not in ("true", "false"):
            raise UsageError("read_only takes true or false")
        section[option] = value.lower() == "true"
    elif option == "port":
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise UsageError("port takes a TCP port number")
        section[option] = int(value)
    elif option in ("jobs", "gc_grace"):
        if not value.isdigit() or (option == "jobs" and int(value) < 1):
            raise UsageError(f"{option} takes a {'positive ' if option == 'jobs' else ''}integer"
                             + (" (seconds)" if option == "gc_grace" else ""))
        section[option] = int(value)
    elif option == "retry_budget":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 86400:
            raise UsageError("retry_budget takes seconds (0 to 86400), e.g. 60")
        section[option] = int(seconds) if seconds.is_integer() else seconds
    else:
        if option == "pack_size":
            try:
                parse_size(value, "pack_size")
            except ConfigError as exc:
                raise UsageError(exc.message) from None
        elif option in ("url", "endpoint_url"):
            check_url(value, option)
        section[option] = value
    cfg.write_toml(path, doc)


def remove(fastreg_dir: Path, name: str, local: bool) -> None:
    path = _target(fastreg_dir, local)
    doc = cfg.read_toml(path)
    if name not in doc.get("remote", {}):
        raise UsageError(f"no remote named {name!r} in {path}")
    del doc["remote"][name]
    if doc.get("core", {}).get("remote") == name:
        del doc["core"]["remote"]
    cfg.write_toml(path, doc)


def set_default(fastreg_dir: Path, name: str, local: bool) -> None:
    if name not in all_remotes(cfg.merged(fastreg_dir)):
        raise UsageError(f"no remote named {name!r}; add it with `fastreg remote add {name} URL`")
    path = _target(fastreg_dir, local)
    doc = cfg.read_toml(path)
    doc.setdefault("core", {})["remote"] = name
    cfg.write_toml(path, doc)


def open_session(remote: Remote, base: Path, jobs: int | None, cache: LocalObjects, state_dir: Path) -> RemoteSession:
    """A session on a remote: its store (relative local paths from `base`), reading into and
    pushing from `cache`, with the remote's index mirror kept under `state_dir`."""
    n = jobs or remote.default_jobs()
    return transfer_session(open_store(remote, base, n), cache, state_dir, n)


def open_remote(project: Project, name: str | None, jobs: int | None) -> tuple[Remote, RemoteSession]:
    """The project's remote `name` (its default for None) and a session on it."""
    remote = pick(project.config, name)
    return remote, open_session(remote, project.root, jobs, project.cache, project.state_dir)

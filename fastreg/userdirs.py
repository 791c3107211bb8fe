"""The user-level folders fastreg keeps, under `$XDG_CACHE_HOME/fastreg` (`~/.cache/fastreg`):
the one module that names them. Everything here can be deleted at any time; it is made again
(re-cloned, re-downloaded, re-built) when needed.

    registries/       bare Git mirrors of the registries read by URL (registry/mirror.py)
    remotes/          what is known of those registries' remotes: index mirrors (transfer/index.py)
    cache/            the user cache that get, list, import's first read, fastreg.api and
                      fastreg:// read data into (a fastreg cache: files/, trees/)
    dvc-manifests/    DVC directory manifests read from DVC registries
    thumbs/           `fastreg ui`'s thumbnails, by content digest
    data/             fastreg.data's bounded sample cache and its sample indexes (index/)
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastreg"


def mirrors() -> Path:
    return root() / "registries"


def remote_state() -> Path:
    """Where sessions on registries' remotes keep their state (under remotes/, by URL)."""
    return root()


def data_cache() -> Path:
    return root() / "cache"


def dvc_manifests() -> Path:
    return root() / "dvc-manifests"


def thumbs() -> Path:
    return root() / "thumbs"


def datasets() -> Path:
    return root() / "data"

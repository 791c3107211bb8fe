"""Where each object lives on a remote, and the format marker: the one module both directions
(push and gc write, fetch, check and readers read) take object names from.

    fastreg-remote.toml       format = 2 (1: written before format 2; read the same way)
    packs/ab/<hex>            b"FRPK\\x01\\0\\0\\0" + chunk bytes back to back
    index/<hex>               index segment of one pack (the commit point of that pack)
    trees/ab/<hex>            tree nodes, byte-identical to the local cache's
    records/ab/<hex>          chunk list of a single-file target, by file digest
    roots/<hex>               the index segments a pushed target's chunks live in (for remotes
                              that cannot be listed, such as plain HTTP)
    gc/<time>-<random>        empty; written by each remote gc before it deletes anything
    projects/<id>/<time>-<hex>  a snapshot: every target one project (one clone) refers to, in
                              its workspace and its Git history, written at the end of each push;
                              remote gc keeps what any project's latest snapshot reaches

Every object is immutable and named by the digest of its bytes (objects/digest.py: SHA-256, 64
hex characters; objects written before format 2 by XXH3-128, 32), except the marker and the root
hints, whose content is a function of their name. The bytes of each object are objects/pack.py's.
A remote holds objects of both formats side by side: the name's length says which hash checks it.
"""

from __future__ import annotations

from fastreg.errors import ObjectNotFound, RemoteFormatError
from fastreg.objects import pack
from fastreg.objects.digest import digest_bytes, from_hex
from fastreg.storage.base import Store

REMOTE_FORMAT = 2
READABLE_FORMATS = ("1", "2")  # format 1: XXH3 names and version-1 index segments only
MARKER_KEY = "fastreg-remote.toml"
PACKS, INDEX, TREES, RECORDS, ROOTS, GC = "packs/", "index/", "trees/", "records/", "roots/", "gc/"
SNAPSHOTS = "projects/"


def fanout_key(prefix: str, digest: bytes) -> str:
    h = digest.hex()
    return f"{prefix}/{h[:2]}/{h}"


def digest_of_key(key: str) -> bytes | None:
    """The digest an object's key ends with (packs/ab/<hex>, trees/..., roots/<hex>), or None for
    a key that does not end with a digest (32 or 64 hex characters)."""
    try:
        return from_hex(key.rsplit("/", 1)[-1])
    except ValueError:
        return None


def pack_key(digest: bytes) -> str:
    return fanout_key("packs", digest)


def tree_key(digest: bytes) -> str:
    return fanout_key("trees", digest)


def record_key(digest: bytes) -> str:
    return fanout_key("records", digest)


def index_key(name: str) -> str:
    return f"index/{name}"


def roots_key(digest: bytes) -> str:
    return f"roots/{digest.hex()}"


def snapshot_key(snap: pack.Snapshot) -> str:
    return f"{SNAPSHOTS}{snap.project}/{snap.time_ns:016x}-{digest_bytes(snap.encode()).hex()}"


def snapshot_key_parts(key: str) -> tuple[str, int] | None:
    """(project id, time_ns) of a snapshot key, or None for a key that is not one."""
    try:
        project, name = key[len(SNAPSHOTS):].split("/")
        return project, int(name.split("-")[0], 16)
    except ValueError:
        return None


async def ensure_format(store: Store, create: bool) -> None:
    """Check the remote's format marker; create it when it is missing and `create` (a push),
    which also moves a format-1 remote to format 2 (what it writes from then on: a fastreg that
    reads format 1 only is told to upgrade, rather than meeting objects it cannot read)."""
    try:
        text = (await store.get(MARKER_KEY)).decode("utf-8", "replace")
    except ObjectNotFound:
        if create:
            await store.put(MARKER_KEY, f"format = {REMOTE_FORMAT}\n".encode())
        return
    fmt = None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "format":
            fmt = value.strip()
    if fmt not in READABLE_FORMATS:
        raise RemoteFormatError(f"{store.url} has remote format {fmt or 'unknown'}; this fastreg reads formats "
                                f"{' and '.join(READABLE_FORMATS)}: upgrade fastreg (or use another remote)")
    if create and fmt != str(REMOTE_FORMAT):
        await store.put(MARKER_KEY, f"format = {REMOTE_FORMAT}\n".encode())

"""Project snapshots on a remote: what each project (each clone) refers to, so that remote gc run
by one project never deletes what another project pushed there (the usual registry setup: a
registry and its consumers' own datasets, or two teams, on one bucket).

Each push ends by writing an immutable snapshot (objects/pack.Snapshot) of every target its
project refers to in its workspace and its Git history, unless the project's latest snapshot
there has the same roots. Remote gc keeps what the latest snapshot of every other project
reaches, and deletes a project's older snapshots once they are past the grace period. A snapshot
is only ever superseded by a newer one of the same project, or retired on purpose
(`fastreg remote retire`); a clone that is gone keeps protecting its data until then, which
costs space, never data. Remotes written before snapshots existed have none: their other
projects are unknown to gc, as before."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from fastreg import tmpnames
from fastreg.errors import DecodeError, IntegrityError, ObjectNotFound
from fastreg.objects import pack
from fastreg.objects.digest import digest_bytes
from fastreg.storage.base import ObjectInfo, Store
from fastreg.transfer import layout


@dataclass(frozen=True, slots=True)
class ProjectEntry:
    """One project on a remote: its latest snapshot, and the older ones gc may drop."""

    project: str
    latest: ObjectInfo
    older: tuple[ObjectInfo, ...]


def roots_digest(roots: tuple[pack.Root, ...]) -> str:
    """Names a set of roots independently of the snapshot's time (to skip a snapshot that would
    say nothing new)."""
    return digest_bytes(pack.Snapshot("", 0, "", roots).encode()).hex()


async def projects(store: Store) -> list[ProjectEntry]:
    by_project: dict[str, list[tuple[int, ObjectInfo]]] = {}
    for o in await store.list(layout.SNAPSHOTS):
        parts = layout.snapshot_key_parts(o.key)
        if parts is not None:
            by_project.setdefault(parts[0], []).append((parts[1], o))
    out = []
    for project, items in sorted(by_project.items()):
        items.sort(key=lambda x: (x[0], x[1].key))
        out.append(ProjectEntry(project, items[-1][1], tuple(o for _, o in items[:-1])))
    return out


async def read(store: Store, key: str) -> pack.Snapshot | None:
    """A snapshot, or None when it is gone (retired meanwhile). A corrupt one is an error: gc must
    not guess what it protected."""
    try:
        data = await store.get(key)
    except ObjectNotFound:
        return None
    try:
        return pack.decode_snapshot(data, store.where(key))
    except DecodeError as exc:
        raise IntegrityError(f"{exc}; remote gc stopped without deleting anything (retire that project's "
                             "snapshots with `fastreg remote retire` if it is gone)") from None


async def write(store: Store, snap: pack.Snapshot, known: str | None) -> tuple[str | None, int]:
    """Write snap unless `known` (the key of this project's last snapshot, with the same roots)
    is still there; returns the key written (or None) and the requests made."""
    if known is not None and await store.exists(known):
        return None, 1
    key = layout.snapshot_key(snap)
    await store.put(key, snap.encode())
    return key, 1 + (known is not None)


async def write_once(store: Store, marker: Path, snap: pack.Snapshot, digest: str) -> int:
    """write(), with `marker` (beside the mirror) remembering the roots digest and key of the
    snapshot this clone wrote last. Returns the requests made."""
    known = None
    with contextlib.suppress(OSError, ValueError):
        last_digest, last_key = (await asyncio.to_thread(marker.read_text)).split()
        known = last_key if last_digest == digest else None
    key, requests = await write(store, snap, known)
    if key is not None:
        await asyncio.to_thread(_write_atomic, marker, f"{digest} {key}\n")
    return requests


def _write_atomic(path: Path, text: str) -> None:
    tmp = tmpnames.beside(path, ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def retire(store: Store, entries: list[ProjectEntry]) -> int:
    keys = [o.key for e in entries for o in (e.latest, *e.older)]
    await asyncio.gather(*(store.delete(k) for k in keys))
    return len(keys)

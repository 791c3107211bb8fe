"""What the client knows of one remote, and the rules for when to believe it.

The view is the remote's index mirror (transfer/index.py: which chunks it has and where, which
tree nodes, file records and hints), the damage `fastreg check` recorded there, and the rules
written once:

- a lookup that the mirror cannot answer is not a "no" until the mirror was refreshed in this
  command (a remote gc or another producer's push may have changed the remote);
- a reader that wants a few files follows locator hints first (the index segments a tree node's
  files live in: a request or two, no listing), then refreshes from the remote's listing;
- a chunk in a pack that `fastreg check` found damaged is not on the remote, whatever the index
  says, and no tree node certifies its subtree until a push has looked at every file again.

Nothing outside transfer/ reads the mirror: callers ask the session, which asks the view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from fastreg.chunking import iter_chunks
from fastreg.objects import tree
from fastreg.objects.tree import FileRecord
from fastreg.plan import Location
from fastreg.storage.base import Store
from fastreg.transfer import layout
from fastreg.transfer import remote_check as check_mod
from fastreg.transfer.index import RemoteIndex


class RemoteView:
    def __init__(self, store: Store, mirror: RemoteIndex) -> None:
        self.store = store
        self.mirror = mirror
        self._distrust: frozenset[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        """This client's folder of state about the remote (the mirror, the damage record, the
        last snapshot written)."""
        return self.mirror.path.parent

    # -- answers from what is known (no I/O) -------------------------------------------------
    def has(self, digest: bytes) -> bool:
        """The remote holds this chunk, readable (not in a pack found damaged)."""
        return self.mirror.has(digest) and (self._distrust is None or digest not in self._distrust)

    def has_file(self, rec: FileRecord) -> bool:
        return all(self.has(d) for d, _ in iter_chunks(rec.chunks, rec.digest, rec.size))

    def find(self, digest: bytes) -> Location | None:
        return self.mirror.find(digest)

    # -- keeping it current ------------------------------------------------------------------
    async def save(self) -> None:
        await asyncio.to_thread(self.mirror.save)

    async def refresh(self, roots: Iterable[bytes] = ()) -> int:
        """New index segments from the remote's listing (and, for a remote that cannot be
        listed, from the hints of `roots`)."""
        n = await self.mirror.refresh(self.store, roots)
        await self.save()
        return n

    async def current(self) -> None:
        """Refreshed once in this command, before a "the remote lacks it" is believed."""
        if not self.mirror.refreshed:
            await self.refresh()

    async def check_format(self, create: bool = False) -> None:
        """The remote's format marker checked (once per mirror); a push (create) also makes sure
        it says the format the push writes (a format-1 remote becomes format 2)."""
        if not self.mirror.segments or (create and self.mirror.marker != layout.REMOTE_FORMAT):
            await layout.ensure_format(self.store, create)
            if create:
                self.mirror.marker = layout.REMOTE_FORMAT

    async def locate(self, chunks: Iterable[bytes], hints: Iterable[bytes] = (), roots: Iterable[bytes] = ()) -> None:
        """Make the mirror know where `chunks` are, cheapest first: nothing when it knows them
        all; else the locator hints of `hints` (the tree nodes or targets holding them: a
        segment or two, no listing); else a refresh (the listing, then the hints of `roots`)."""
        wanted = [d for d in chunks if not self.mirror.has(d)]
        if not wanted:
            return
        hints = list(hints)
        if hints:
            await self.mirror.refresh_hints(self.store, hints)
            await self.save()
            wanted = [d for d in wanted if not self.mirror.has(d)]
            if not wanted:
                return
        await self.refresh(roots)

    async def learn_trees(self) -> None:
        """Add the tree nodes the remote holds (one listing of trees/) to what the mirror knows."""
        await self.mirror.learn_trees(self.store)
        await self.save()

    def forget(self) -> None:
        """Believe nothing until the next refresh (after a check found damage, a repair)."""
        self.mirror.forget()
        self.mirror.save()

    async def confirm_roots(self, roots: Iterable[bytes]) -> None:
        """Believe what the mirror knows of tree nodes only while the roots it knows are still
        there: one HEAD per such root, at once. A root gone (a gc that raced a push, damage)
        makes the mirror forget the tree nodes and certificates it knew, so the push lists
        trees/ afresh and uploads what is missing again."""
        known = list(dict.fromkeys(r for r in roots if r in self.mirror.trees))
        if not known:
            return
        there = await asyncio.gather(*(self.store.exists(layout.tree_key(r)) for r in known))
        if not all(there):
            self.mirror.trees = set()
            self.mirror.certified = set()
            self.mirror.trees_listed = False

    # -- certified subtrees ------------------------------------------------------------------
    async def certified(self, cache: tree.TreeStore, root: bytes) -> set[bytes]:
        """The nodes under root whose whole subtree the remote holds (tree.certified_nodes), from
        what the mirror knows of the remote's tree nodes; trees/ is listed once when the mirror
        does not know the root's node (a clone that did not push it). Empty while damage found by
        a check is unrepaired, and for a remote that cannot be listed (every file is looked at)."""
        if self.suspect():
            return set()
        mirror = self.mirror
        if root not in mirror.trees and not mirror.trees_listed:
            await self.learn_trees()
        found = await asyncio.to_thread(tree.certified_nodes, cache, root, mirror.trees.__contains__, mirror.certified)
        mirror.certified |= found
        return found

    # -- damage found by `fastreg check` -------------------------------------------------------
    def damage(self) -> dict[bytes, set[bytes] | None]:
        return check_mod.load_damage(self.mirror.path)

    def suspect(self) -> bool:
        return check_mod.damage_recorded(self.mirror.path)

    def record_damage(self, damaged: dict[bytes, set[bytes] | None]) -> None:
        """Remember what a check found damaged, and believe nothing the mirror says until the
        next refresh: the next push lists the remote afresh and sends what is gone again."""
        check_mod.record_damage(self.mirror.path, damaged)
        self._distrust = None
        self.forget()

    def clear_damage(self) -> None:
        check_mod.clear_damage(self.mirror.path)

    def reset_distrust(self) -> None:
        """The damaged packs were withdrawn (their chunks are in new packs)."""
        self._distrust = frozenset()

    async def distrust(self) -> frozenset[bytes]:
        """The chunks of the damaged packs (read from their segments), which `has` then denies."""
        if self._distrust is None:
            damaged = self.damage()
            if not damaged:
                self._distrust = frozenset()
            else:
                await self.refresh()  # the damaged packs' segments, to know their chunks
                self._distrust = frozenset(await check_mod.damaged_chunks(self.store, self.mirror, damaged))
        return self._distrust

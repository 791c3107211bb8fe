"""Three-way merge of trees and metafiles: a pure function of base, ours and theirs.

A path merges when only one side changed it, or both changed it the same way; folders merge
entry by entry, recursively, and a folder whose digest is the same on two sides is never read,
so a merge reads the nodes on the paths that changed and writes new nodes only there. A file
deleted on one side and left alone on the other is deleted; a folder deleted on one side merges
as an empty folder against the other side's changes (its untouched files go, files the other side
changed inside it are conflicts). Only the same path changed two different ways is a conflict: the
merged tree then holds our version there, and the conflict names the path and what each side did.

Git's merge driver (`fastreg merge-driver`) and `fastreg merge` are thin shells around this."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from fastreg.objects import metafile, tree

Side = Literal["ours", "theirs"]


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str  # relative to the tracked directory ("" for the metafile as a whole)
    why: str  # what each side did, in a few words

    def line(self, target: str) -> str:
        where = f"{target}/{self.path}" if self.path else target
        return f"{where}: {self.why}"


@dataclass(frozen=True, slots=True)
class Merged:
    record: tree.DirRecord | None  # None: the folder is gone (deleted on a side, untouched on the other)
    conflicts: tuple[Conflict, ...]


Resolver = Callable[[str], Side | None]  # which side wins a conflict at a path (None: stays a conflict)


def _no_resolver(_: str) -> Side | None:
    return None


def _what(before: tree.Record | None, after: tree.Record | None) -> str:
    if before is None:
        return "added"
    if after is None:
        return "deleted"
    if isinstance(before, tree.DirRecord) != isinstance(after, tree.DirRecord):
        return "made a folder" if isinstance(after, tree.DirRecord) else "made a file"
    return "modified"


R = TypeVar("R", tree.FileRecord, tree.DirRecord)


def _three_way(base: R | None, ours: R | None, theirs: R | None) -> tuple[bool, R | None]:
    """The rule for one path: (True, the result) when one side changed it or both alike,
    (False, None) when both changed it, differently."""
    if ours == theirs or base == theirs:
        return True, ours
    if base == ours:
        return True, theirs
    return False, None


def _entries(store: tree.TreeStore, digest: bytes | None) -> Iterator[tuple[str, tree.Record]]:
    return tree.iter_dir(store, digest) if digest is not None else iter(())


def merge_trees(store: tree.TreeStore, base: bytes | None, ours: bytes | None, theirs: bytes | None,
                resolve: Resolver = _no_resolver, prefix: str = "") -> Merged:
    """Merge three directories (None: absent, merged as empty). New nodes go to `store`."""
    if ours == theirs or base == theirs:
        return Merged(_dir_record(store, ours), ())
    if base == ours:
        return Merged(_dir_record(store, theirs), ())
    sides = [dict(_entries(store, d)) for d in (base, ours, theirs)]
    # the sides' format (merge_metafiles merges by path only sides of one format; a base of the
    # other format only makes more conflicts: no record of it is ever taken, as none equals a side)
    out = tree.DirBuilder(store, len(next(d for d in (ours, theirs, base) if d is not None)))
    conflicts: list[Conflict] = []
    for name in sorted(set(sides[0]) | set(sides[1]) | set(sides[2])):
        a, o, t = (s.get(name) for s in sides)
        path = prefix + name
        # A name merges as a file part and a folder part (each absent on some sides), so a file
        # deleted on one side while the other made it a folder merges like any deletion.
        af, of, tf = (r if isinstance(r, tree.FileRecord) else None for r in (a, o, t))
        ad, od, td = (r if isinstance(r, tree.DirRecord) else None for r in (a, o, t))
        def side_for(path: str = path, a: tree.Record | None = a, o: tree.Record | None = o,
                     t: tree.Record | None = t) -> Side:
            """Who wins where both sides changed `path` differently (a conflict unless resolved)."""
            side = resolve(path)
            if side is None:
                conflicts.append(Conflict(path, f"{_what(a, o)} in ours, {_what(a, t)} in theirs"))
                return "ours"
            return side

        decided, f = _three_way(af, of, tf)
        if not decided:
            f = of if side_for() == "ours" else tf
        decided, d = _three_way(ad, od, td)
        if not decided:
            sub = merge_trees(store, ad.digest if ad else None, od.digest if od else None,
                              td.digest if td else None, resolve, path + "/")
            conflicts.extend(sub.conflicts)
            d = sub.record
            if d is not None and d.files == 0 and (od is None or td is None) and not sub.conflicts:
                d = None  # deleted on one side, nothing the other side added survives in it
        if f is not None and d is not None:  # one name, a file on one side and a folder on the other
            keep = o if side_for() == "ours" else t
            f, d = (keep, None) if isinstance(keep, tree.FileRecord) else (None, keep)
        if d is not None:
            out.add_dir(name, d)
        elif f is not None:
            out.add_file(name, f)
    if ours is None and theirs is None:
        return Merged(None, tuple(conflicts))
    return Merged(out.finish(), tuple(conflicts))


def _dir_record(store: tree.TreeStore, digest: bytes | None) -> tree.DirRecord | None:
    """The record of an existing node (size and file count summed from its entries)."""
    if digest is None:
        return None
    size = files = 0
    for _, rec in tree.iter_dir(store, digest):
        size += rec.size
        files += rec.files if isinstance(rec, tree.DirRecord) else 1
    return tree.DirRecord(size, digest, files)


def _same(a: metafile.Metafile | None, b: metafile.Metafile | None) -> bool:
    """Equal as data (a conflict record left by an earlier merge is not part of it)."""
    if a is None or b is None:
        return a is b
    return replace(a, conflicts=()) == replace(b, conflicts=())


def _describe(m: metafile.Metafile | None) -> str:
    if m is None:
        return "deleted"
    if m.source is not None:
        return f"imported {m.source.path} at {m.source.rev or 'the default branch'} ({m.source.rev_lock[:10]})"
    old = " recorded in format 1 (XXH3; `fastreg add` records it in format 2)" if len(m.digest) == 16 else ""
    return f"a {'folder' if m.kind == 'dir' else 'file'} of {m.files} file{'s' if m.files != 1 else ''}{old}"


def merge_metafiles(store: tree.TreeStore, base: metafile.Metafile | None, ours: metafile.Metafile | None,
                    theirs: metafile.Metafile | None, resolve: Resolver = _no_resolver
                    ) -> tuple[metafile.Metafile | None, tuple[Conflict, ...]]:
    """Merge three versions of one metafile (None: absent on that side). Whole metafiles merge
    first (one side unchanged, or both the same); then two folders of the project's own data merge
    by path. Anything else changed on both sides (a file target, an import updated to two
    revisions, a folder turned into a file) is one conflict for the whole target. With conflicts,
    the result is our side (with the merged tree for folders) carrying the list of conflicts."""
    if _same(ours, theirs) or _same(base, theirs):
        return ours, ()
    if _same(base, ours):
        return theirs, ()
    mergeable = (ours is not None and theirs is not None and ours.kind == theirs.kind == "dir"
                 and ours.source is None and theirs.source is None and len(ours.digest) == len(theirs.digest)
                 and (base is None or (base.kind == "dir" and base.source is None)))
    if not mergeable:
        side = resolve("")
        if side is not None:
            return (ours if side == "ours" else theirs), ()
        conflict = Conflict("", f"{_describe(ours)} in ours, {_describe(theirs)} in theirs")
        kept = ours if ours is not None else theirs
        return (replace(kept, conflicts=(conflict.why,)) if kept is not None else None), (conflict,)
    assert ours is not None and theirs is not None
    merged = merge_trees(store, base.digest if base else None, ours.digest, theirs.digest, resolve)
    rec = merged.record
    assert rec is not None
    result = metafile.Metafile(ours.path, "dir", rec.digest, rec.size, rec.files,
                         conflicts=tuple(c.line(ours.path) for c in merged.conflicts))
    return result, merged.conflicts

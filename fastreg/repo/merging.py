"""Metafiles under Git merges: the merge driver, its registration, and `fastreg merge`.

`.gitattributes` (committed, written by `fastreg init`) names the driver for `*.fastreg`; the
driver's command lives in each clone's Git config, which is never shared, so every fastreg
command registers it in a clone that lacks it (one read of .git/config when it is there). Git
runs it for `git merge`, `pull`, `pull --rebase`, `rebase` and `cherry-pick` alike; the merge
itself is objects/merge.py. Tree nodes a side has that the clone lacks are fetched from the
project's remote (trees only, never data); merged nodes go into the cache, and the next push
uploads them like any others."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from fastreg import git_cli as git
from fastreg.errors import FastregError, PathError
from fastreg.objects import merge as three_way
from fastreg.objects import metafile, tree
from fastreg.repo.project import Project, Target


def _parse(text: str, where: str) -> metafile.Metafile | None:
    return metafile.loads(text, where) if text.strip() else None


def _ensure_trees(project: Project, metas: Iterable[metafile.Metafile | None]) -> None:
    from fastreg.repo.diff import ensure_trees

    own: list[metafile.Metafile | None] = [m for m in metas if m is not None and m.source is None]
    ensure_trees(project, own, None, None)


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    target: str  # project-relative data path
    meta: metafile.Metafile | None
    conflicts: tuple[three_way.Conflict, ...]


def _merge(project: Project, rel: str, base: metafile.Metafile | None, ours: metafile.Metafile | None,
           theirs: metafile.Metafile | None, resolve: three_way.Resolver) -> MergeOutcome:
    _ensure_trees(project, (base, ours, theirs))
    merged, conflicts = three_way.merge_metafiles(project.cache, base, ours, theirs, resolve)
    return MergeOutcome(rel, merged, conflicts)


def run_driver(base_file: str, ours_file: str, theirs_file: str, path: str) -> int:
    """Git's merge driver: merge the three versions, write the result over `ours_file`; exit 0
    when merged, 1 (Git's "conflict") with one line per conflicting path on stderr."""
    where = Path.cwd() / path
    project = Project.find(where.parent)
    t = project.target_from_meta(where)
    rel_meta = f"{t.rel}{metafile.METAFILE_SUFFIX}"
    ours_text = Path(ours_file).read_text()
    try:
        base = _parse(Path(base_file).read_text(), rel_meta)
        ours = _parse(ours_text, rel_meta)
        theirs = _parse(Path(theirs_file).read_text(), rel_meta)
        out = _merge(project, t.rel, base, ours, theirs, lambda _: None)
    except FastregError as exc:
        # Nothing merged: our side stays, marked unmerged so `fastreg status` explains it, and
        # `fastreg merge` retries from Git's index once the cause is fixed.
        print(f"fastreg merge: {rel_meta}: cannot merge: {exc.message}", file=sys.stderr)
        try:
            kept = metafile.loads(ours_text, rel_meta)
        except FastregError:
            return 1
        Path(ours_file).write_text(metafile.dumps(_mark(kept, (f"not merged: {exc.message}",))))
        return 1
    if out.meta is not None:
        Path(ours_file).write_text(metafile.dumps(out.meta))
    for c in out.conflicts:
        print(f"fastreg merge: CONFLICT {c.line(t.rel)}", file=sys.stderr)
    if out.conflicts:
        print(f"fastreg merge: resolve with `fastreg merge --ours|--theirs {t.rel}` (or fix the data and "
              f"`fastreg add {t.rel}`), then `git add {rel_meta}`", file=sys.stderr)
    return 1 if out.conflicts else 0


def _mark(meta: metafile.Metafile, lines: tuple[str, ...]) -> metafile.Metafile:
    return replace(meta, conflicts=lines)


def _top(project: Project) -> Path:
    out = git.run(["rev-parse", "--show-toplevel"], cwd=project.root).stdout.decode().strip()
    return Path(out)


def unmerged_metafiles(project: Project) -> dict[str, dict[int, str]]:
    """Project-relative metafile path -> {stage: blob} for every metafile Git has unmerged."""
    top = _top(project)
    out: dict[str, dict[int, str]] = {}
    listing = git.run(["ls-files", "-u", "-z", "--full-name", "--", "*" + metafile.METAFILE_SUFFIX], cwd=top).stdout
    for item in listing.split(b"\0"):
        if not item:
            continue
        info, _, name = item.partition(b"\t")
        _, blob, stage = info.decode().split()
        full = top / os.fsdecode(name)
        try:
            rel = full.relative_to(project.root).as_posix()
        except ValueError:
            continue
        out.setdefault(rel, {})[int(stage)] = blob
    return out


def _blob(project: Project, blob: str | None) -> str:
    if blob is None:
        return ""
    return git.run(["cat-file", "blob", blob], cwd=project.root).stdout.decode()


def merge(project: Project, paths: list[str], side: three_way.Side | None) -> list[MergeOutcome]:
    """`fastreg merge [--ours|--theirs] [PATH...]`: merge again, from the three versions Git keeps
    in its index, every unmerged metafile (or those PATH names; a PATH inside a tracked folder
    limits --ours/--theirs to the conflicts under it). Writes each result; conflicts that remain
    are returned (the metafile then records them)."""
    pending = unmerged_metafiles(project)
    chosen: dict[str, list[str]] = {}  # metafile rel -> inner paths ([]: all)
    for p in paths:
        t = project.target(p)
        meta_rel = f"{t.rel}{metafile.METAFILE_SUFFIX}"
        if meta_rel in pending:
            chosen.setdefault(meta_rel, [])
            continue
        owner = project.tracked_ancestor(t) or _unmerged_owner(project, t, pending)
        if owner is None or f"{owner.rel}{metafile.METAFILE_SUFFIX}" not in pending:
            raise PathError(f"{p}: no merge in progress for it (Git has no unmerged metafile there); "
                            f"`git status` shows what is unmerged")
        chosen.setdefault(f"{owner.rel}{metafile.METAFILE_SUFFIX}", []).append(t.rel[len(owner.rel) + 1 :])
    if not paths:
        chosen = {rel: [] for rel in pending}
        if not chosen:
            raise PathError("no metafile is unmerged (nothing to merge; `git status` shows what is)")
    out = []
    for meta_rel, inner in sorted(chosen.items()):
        stages = pending[meta_rel]
        texts = [_blob(project, stages.get(n)) for n in (1, 2, 3)]
        base, ours, theirs = (_parse(x, meta_rel) for x in texts)

        t = project.target(str(project.root / meta_rel))
        settled = _settled(project, t, base, ours, theirs)

        def resolve(path: str, inner: list[str] = inner,
                    settled: dict[str, three_way.Side] | None = settled) -> three_way.Side | None:
            if side is not None and any(path == i or path.startswith(i + "/") for i in inner):
                return side  # named now
            if settled is not None and path in settled:
                return settled[path]  # settled by an earlier call
            return side if not inner else None

        result = _merge(project, t.rel, base, ours, theirs, resolve)
        if result.meta is None:
            if t.meta.exists():
                t.meta.unlink()
        else:
            project.write_meta(t, result.meta)
        out.append(result)
    return out


def _settled(project: Project, t: Target, base: metafile.Metafile | None, ours: metafile.Metafile | None,
             theirs: metafile.Metafile | None) -> dict[str, three_way.Side] | None:
    """Conflicts an earlier `fastreg merge --ours/--theirs PATH` settled in the metafile as it is
    now: path -> the side it took (a later call keeps them). None when nothing was settled."""
    try:
        current = project.read_meta(t, unmerged_ok=True)
    except FastregError:
        return None
    if not current.conflicts or ours is None or theirs is None or current.kind != "dir" or ours.kind != "dir" \
            or theirs.kind != "dir":
        return None
    open_paths = {line.rsplit(": ", 1)[0].removeprefix(current.path + "/") for line in current.conflicts}
    _ensure_trees(project, (base, ours, theirs))
    first = three_way.merge_trees(project.cache, base.digest if base else None, ours.digest, theirs.digest)
    out: dict[str, three_way.Side] = {}
    for c in first.conflicts:
        if c.path in open_paths:
            continue
        now = tree.lookup(project.cache, current.digest, c.path)
        out[c.path] = "theirs" if now == tree.lookup(project.cache, theirs.digest, c.path) else "ours"
    return out


def _unmerged_owner(project: Project, t: Target, pending: dict[str, dict[int, str]]) -> Target | None:
    """The unmerged tracked folder that contains t (its metafile may not be readable)."""
    for meta_rel in pending:
        rel = meta_rel[: -len(metafile.METAFILE_SUFFIX)]
        if t.rel.startswith(rel + "/"):
            return project.target_from_meta(project.root / meta_rel)
    return None



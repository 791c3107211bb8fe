"""`fastreg remove`: stop tracking a path. The cache and remotes are not touched (what no
metafile uses any more is for gc to drop); with --outs the data goes too, unless local changes that
exist nowhere else would go with it."""

from __future__ import annotations

import os
import shutil

from fastreg.errors import ConflictError
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache


def remove(project: Project, paths: list[str], outs: bool, force: bool = False) -> list[Target]:
    """Remove each target's metafile and .gitignore line; the data stays unless outs. With outs,
    local changes that exist nowhere else (checkout's rule) stop it before anything is removed,
    unless force."""
    targets = [project.target(p, must_exist=True) for p in paths]
    metas = [project.read_meta(t) for t in targets]  # a metafile fastreg cannot read is not removed blindly
    if outs and not force:
        from fastreg.repo.checkout import unsaved_changes

        lost = [p for t, meta in zip(targets, metas, strict=True) for p in unsaved_changes(project, t, meta)]
        if lost:
            shown = ", ".join(lost[:5]) + (f" (and {len(lost) - 5} more)" if len(lost) > 5 else "")
            raise ConflictError(f"{shown}: local changes that are not in the cache would be lost; run "
                                "`fastreg add` to keep them or `fastreg remove --outs --force` to discard them")
    for t in targets:
        if outs and os.path.lexists(t.data):
            if t.data.is_dir() and not t.data.is_symlink():
                shutil.rmtree(t.data)
            else:
                t.data.unlink()
        t.meta.unlink()
        project.unignore(t)
        StatCache(project.state_dir, t.rel).path.unlink(missing_ok=True)
    return targets

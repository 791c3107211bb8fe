"""`fastreg move`: tracked data and its metafile to a new place. The data keeps its digest, so
nothing is hashed or uploaded again."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fastreg.errors import PathError
from fastreg.objects import metafile
from fastreg.repo.project import Project, Target
from fastreg.repo.statcache import StatCache


@dataclass(frozen=True, slots=True)
class Moved:
    src: Target
    dst: Target
    data_moved: bool  # False: the data was not in the workspace (never pulled): only the metafile moved


def move(project: Project, src: str, dst: str) -> Moved:
    """Move tracked data and its metafile to dst (into dst when it is a directory, as mv does)."""
    s = project.target(src, must_exist=True)
    meta = project.read_meta(s)
    dest_path = Path(dst)
    if dest_path.is_dir() and not dest_path.name.endswith(metafile.METAFILE_SUFFIX):
        dest_path = dest_path / s.name
    d = project.target(str(dest_path))
    if d.rel == s.rel:
        raise PathError(f"{dst}: is {s.rel} already")
    if d.rel.startswith(s.rel + "/"):
        raise PathError(f"{dst}: inside {s.rel}, which is being moved")
    if os.path.lexists(d.data) or d.meta.exists():
        raise PathError(f"{d.rel}: exists already; remove it first or choose another destination")
    owner = project.tracked_ancestor(d)
    if owner is not None:
        raise PathError(f"{d.rel}: inside the tracked directory {owner.rel}; move it somewhere else")
    d.data.parent.mkdir(parents=True, exist_ok=True)
    moved = os.path.lexists(s.data)
    if moved:
        shutil.move(s.data, d.data)  # a rename on one filesystem: inodes, and so the stat cache, stay valid
    project.write_meta(d, metafile.Metafile(d.name, meta.kind, meta.digest, meta.size, meta.files, meta.executable,
                                      meta.source))
    s.meta.unlink()
    project.unignore(s)
    project.ignore(d)
    old_sc, new_sc = StatCache(project.state_dir, s.rel).path, StatCache(project.state_dir, d.rel).path
    if old_sc.exists():
        os.replace(old_sc, new_sc)
    return Moved(s, d, moved)

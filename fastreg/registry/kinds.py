"""Which reader a registry needs: `open_reader(url, rev)` resolves the revision once and looks
at the commit: `.fastreg/` makes it a fastreg registry (FastregReader), `.dvc/` without it a DVC
project read as one (DvcReader), and so does a monorepo of DVC projects (`dvc init --subdir`:
a `.dvc/` in subfolders). The one place that knows both kinds."""

from __future__ import annotations

from fastreg.registry.fastreg_reader import FastregReader
from fastreg.registry.mirror import Mirror
from fastreg.registry.reader import Reader
from fastreg.repo.cache import Cache


def open_reader(url: str, rev: str | None, cache: Cache | None = None, jobs: int | None = None) -> Reader:
    """The reader for the registry at url and rev: a fastreg registry (it has `.fastreg/`), or a
    DVC project read as one (it has `.dvc/` and no `.fastreg/`: registry/dvc_reader.py)."""
    git = Mirror(url)
    resolved = git.resolve(rev)
    config, dvc_config = git.read_many(resolved.commit, [".fastreg/config", ".dvc/config"])
    if config is None:
        # A DVC project at the root; else a monorepo of projects made with `dvc init --subdir`
        # (found with one listing, which a root project does not need)
        roots = {""}
        if dvc_config is None and git.kind(resolved.commit, ".dvc") != "tree":
            marks = ("/.dvc/config", "/.dvc/.gitignore")
            roots = {n.rpartition("/.dvc/")[0] for n in git.names(resolved.commit, "") if n.endswith(marks)}
        if roots:
            from fastreg.registry.dvc_reader import DvcReader  # its parsers load only for a DVC project

            order = sorted(roots)
            configs = git.read_many(resolved.commit, [f"{r}/.dvc/config" if r else ".dvc/config" for r in order])
            return DvcReader(git, resolved, {r: c or b"" for r, c in zip(order, configs, strict=True)}, cache, jobs)
    return FastregReader(git, resolved, config, cache, jobs)

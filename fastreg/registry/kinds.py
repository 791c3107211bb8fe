"""Which reader a registry needs: `open_reader(url, rev)` resolves the revision once and looks
at the commit: `.fastreg/` makes it a fastreg registry (FastregReader), `.dvc/` without it a DVC
project read as one (DvcReader). The one place that knows both kinds."""

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
    if config is None and (dvc_config is not None or git.kind(resolved.commit, ".dvc") == "tree"):
        from fastreg.registry.dvc_reader import DvcReader  # its parsers load only for a DVC project

        return DvcReader(git, resolved, dvc_config or b"", cache, jobs)
    return FastregReader(git, resolved, config, cache, jobs)

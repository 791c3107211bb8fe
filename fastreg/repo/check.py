"""`fastreg check`: is a remote (or the local cache) whole?

The remote side runs in transfer/check.py. What it finds damaged is recorded beside the
remote's index mirror (state/remotes/<id>/damaged), and the mirror is made to forget what it
believed, so that the next `fastreg push` of a project that still has the data uploads the
missing trees, records and chunks again and withdraws the damaged packs' index entries
(transfer/upload.py, repair_damaged)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastreg.chunking import file_digest
from fastreg.objects import pack, tree
from fastreg.objects.digest import matches
from fastreg.repo.gc import metafiles_in_history
from fastreg.repo.project import Project
from fastreg.repo.remotes import open_remote
from fastreg.repo.workspace import select
from fastreg.transfer.remote_check import CheckReport, CheckRoot, Problem, problems_json


def check_remote(project: Project, paths: Iterable[str], remote_name: str | None, all_commits: bool,
                 read: float | int | bool | None, jobs: int | None) -> tuple[str, CheckReport]:
    """Check what the selected targets (all of the workspace's by default; with all_commits,
    every version in the Git history too) need on the remote. Imports are their registry's."""
    roots = [CheckRoot(s.target.rel, pack.Root(s.meta.kind, s.meta.digest, s.meta.size))
             for s in select(project, paths) if s.meta.source is None]
    if all_commits:
        seen = {r.root.digest for r in roots}
        for meta in metafiles_in_history(project):
            if meta.source is None and meta.digest not in seen:
                seen.add(meta.digest)
                roots.append(CheckRoot(f"{meta.path} (at {meta.digest.hex()[:10]})",
                                       pack.Root(meta.kind, meta.digest, meta.size)))
    remote, session = open_remote(project, remote_name, jobs)
    project.cache.ensure()
    with session:
        session.check_format()
        # What is damaged is remembered for the next push to repair (not on a read-only remote)
        report = session.check(roots, read, record=not remote.read_only)
    return remote.name, report


# -- the local cache ---------------------------------------------------------------------------
@dataclass(slots=True)
class CacheReport:
    files: int = 0
    trees: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    moved_aside: int = 0

    def to_json(self, cache: str) -> dict[str, object]:
        return {"cache": cache, "files": self.files, "trees": self.trees, "bytes_read": self.bytes_read,
                "moved_aside": self.moved_aside, **problems_json(self.problems)}


def check_cache(project: Project, repair: bool) -> CacheReport:
    """Every object of the local cache against its digest; with repair, damaged ones are moved
    to <cache>/damaged/ (kept for inspection), so the next fetch or add stores them afresh."""
    cache = project.cache
    report = CacheReport()
    bad: dict[bytes, Problem] = {}
    for kind in ("files", "trees"):
        for digest, path in cache.iter_objects(kind):
            try:
                if kind == "files":
                    ok = file_digest(path, len(digest)) == digest
                    report.files += 1
                else:
                    ok = matches(path.read_bytes(), digest)
                    report.trees += 1
                report.bytes_read += path.stat().st_size
            except OSError as exc:
                bad[digest] = Problem(f"unreadable-{kind[:-1]}", str(path), exc.strerror or str(exc))
                continue
            if not ok:
                bad[digest] = Problem(f"corrupt-{kind[:-1]}", str(path), "content does not match its digest")
    if bad:
        _name_affected(project, bad)
    if repair and bad:
        cache.note_removal()
        aside = cache.root / "damaged"
        for digest, problem in bad.items():
            aside.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(problem.key, aside / digest.hex())
                report.moved_aside += 1
    report.problems = sorted(bad.values(), key=lambda p: p.key)
    return report


def _name_affected(project: Project, bad: dict[bytes, Problem]) -> None:
    """Attribute damaged objects to the workspace's tracked files that use them."""
    for t in project.metafiles():
        try:
            meta = project.read_meta(t)
            if meta.kind == "file":
                if meta.digest in bad:
                    bad[meta.digest].hit(t.rel)
                continue
            if meta.digest in bad:
                bad[meta.digest].hit(t.rel)
                continue
            for node in tree.walk_dirs(project.cache, meta.digest):
                if node in bad:
                    bad[node].hit(t.rel)
            for rel, rec in tree.walk(project.cache, meta.digest):
                if rec.digest in bad:
                    bad[rec.digest].hit(f"{t.rel}/{rel}")
        except Exception:
            continue

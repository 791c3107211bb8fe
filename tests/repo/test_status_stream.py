"""Streaming status (repo/scan.py) against the plain answer on random trees: names that sort
around '/' ('-', '.', ' '), nested folders, files added, edited, deleted, whole folders gone,
a file turned into a folder; the stat cache it writes makes the next status read nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastreg.cli import main
from fastreg.objects import tree
from fastreg.repo import status as status_mod
from fastreg.repo.project import Project
from fastreg.repo.statcache import canonical
from tests.helpers import file_id

names = st.text(alphabet="ab-. _", min_size=1, max_size=3).filter(lambda n: n not in (".", "..") and
                                                                   n.strip() == n)
paths = st.lists(names, min_size=1, max_size=3).map("/".join)


def reference(project: Project, root: Path, digest: bytes, here: bool) -> tuple[list[str], ...]:
    """here: the stat cache remembers the files add saw (else they were never in this workspace)."""
    expected = dict(tree.walk(project.cache, digest))
    ws = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            ws[p.relative_to(root).as_posix()] = file_id(p.read_bytes())
    added = [r for r in ws if r not in expected]
    modified = [r for r in ws if r in expected and expected[r].digest != ws[r]]
    gone = [r for r in expected if r not in ws]
    deleted = gone if here else []
    not_pulled = [] if here else gone
    return tuple(sorted(x, key=canonical) for x in (added, modified, deleted, not_pulled))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(paths, min_size=1, max_size=12), st.sets(paths, max_size=4), st.data())
def test_streamed_status_equals_the_plain_answer(before: set[str], extra: set[str], data) -> None:
    top = Path(tempfile.mkdtemp())
    cwd = os.getcwd()
    try:
        os.chdir(top)
        assert main(["-q", "init", "--no-scm"]) == 0
        ds = top / "ds"
        written = []
        for i, rel in enumerate(sorted(before)):
            p = ds / rel
            if any((ds / w).is_file() and (rel + "/").startswith(w + "/") for w in written) or p.is_dir():
                continue  # a path under a file (or a folder already there): not in this tree
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f"v1 {i} {rel}".encode())
            written.append(rel)
        os.utime(ds, (1_600_000_000, 1_600_000_000))
        for dirpath, _, files in os.walk(ds):
            for f in files:
                os.utime(Path(dirpath) / f, (1_600_000_000, 1_600_000_000))
        assert main(["-q", "add", "ds"]) == 0
        project = Project.find()
        meta = project.read_meta(project.target("ds"))
        for rel in written:
            action = data.draw(st.sampled_from(["keep", "keep", "edit", "delete", "forget"]))
            p = ds / rel
            if action == "edit":
                p.write_bytes(b"edited " + rel.encode())
            elif action == "delete":
                p.unlink()
            elif action == "forget":  # deleted from the workspace and from the cache: still a deletion
                obj = project.cache.file_path(file_id(p.read_bytes()))
                p.unlink()
                if obj.exists():
                    obj.chmod(0o644)
                    obj.unlink()
        for rel in sorted(extra):
            p = ds / rel
            if p.exists() or any(q.is_file() for q in [ds, *[ds / "/".join(rel.split("/")[:k])
                                                              for k in range(1, rel.count("/") + 1)]]):
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"new " + rel.encode())
        here = data.draw(st.booleans())
        if not here:  # as a killed pull leaves it: files here or not, no stat cache
            for p in (top / ".fastreg/state/stat").iterdir():
                p.unlink()
        [res] = status_mod.status(project, ["ds"])
        want = reference(project, ds, meta.digest, here)
        assert (res.added, res.modified, res.deleted, res.not_pulled) == want
        [again] = status_mod.status(project, ["ds"])
        assert (again.added, again.modified, again.deleted, again.not_pulled) == want
        # add again (stat cache streamed alongside the walk) records what a fresh add records
        assert main(["-q", "add", "--force", "ds"]) == 0
        fresh = top / "fresh"
        fresh.mkdir()
        shutil.copytree(ds, fresh / "ds")
        os.chdir(fresh)
        assert main(["-q", "init", "--no-scm"]) == 0
        assert main(["-q", "add", "ds"]) == 0
        assert (fresh / "ds.fastreg").read_text() == (top / "ds.fastreg").read_text()
    finally:
        os.chdir(cwd)
        shutil.rmtree(top, ignore_errors=True)

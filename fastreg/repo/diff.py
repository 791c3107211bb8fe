"""What changed in tracked data between two versions: two Git revisions of a project, a
revision and the workspace, or two revisions of a registry (registry/ops.py).

Trees are compared node by node (objects/tree.diff): a subdirectory with the same digest on both
sides is skipped unread, so the work follows what changed, not the dataset. Only the workspace
side walks files (as status does, through the stat cache). A file deleted at one path and added
at another with the same digest is reported once, as renamed. Across the two digest formats (a
version recorded before format 2 and one after), a file of equal size is compared by its bytes
(settle_formats), so only real changes are reported. Memory: the changes, not the files."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from fastreg.chunking import WHOLE_FILE_LIMIT, file_digest
from fastreg.errors import FastregError, FileSystemError, MissingDataError, UsageError
from fastreg.objects import metafile, tree
from fastreg.objects.tree import FileRecord
from fastreg.repo.cache import Cache
from fastreg.repo.project import Project
from fastreg.repo.pull import ImportOpener

KINDS = ("added", "deleted", "modified", "renamed")


@dataclass(frozen=True, slots=True)
class FileChange:
    kind: str  # one of KINDS
    path: str  # project (or registry) relative; for renamed, the new path
    size: int | None  # after the change (for deleted: before); None: not recorded (DVC manifests)
    old_size: int | None = None  # modified: the size before
    old_path: str | None = None  # renamed: where it was


@dataclass(slots=True)
class DiffResult:
    a: str  # what the sides are, for people: "HEAD (1a2b3c4d5e)", "workspace"
    b: str
    changes: list[FileChange] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, int | None]]:
        """Per kind: files and bytes (of the new version; deleted: of the old); bytes None when
        the size of one of them is not recorded."""
        files = dict.fromkeys(KINDS, 0)
        nbytes: dict[str, int | None] = dict.fromkeys(KINDS, 0)
        for c in self.changes:
            files[c.kind] += 1
            total = nbytes[c.kind]
            nbytes[c.kind] = None if total is None or c.size is None else total + c.size
        return {kind: {"files": files[kind], "bytes": nbytes[kind]} for kind in KINDS}

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"a": self.a, "b": self.b}
        for kind in KINDS:
            doc[kind] = [{"path": c.path, "size": c.size,
                          **({"old_size": c.old_size} if c.kind == "modified" else {}),
                          **({"old_path": c.old_path} if c.kind == "renamed" else {})}
                         for c in self.changes if c.kind == kind]
        doc["summary"] = self.summary()
        return doc


def _files_of(store: tree.TreeStore, path: str, meta: metafile.Metafile) -> Iterator[tuple[str, FileRecord]]:
    if meta.kind == "file":
        yield path, FileRecord(meta.size, meta.digest, b"", meta.executable)
    else:
        yield from tree.walk(store, meta.digest, path + "/")


def compare_metas(store: tree.TreeStore, path: str, a: metafile.Metafile | None,
                  b: metafile.Metafile | None) -> Iterator[tree.Change]:
    """The file changes between two versions of one tracked path (None: not tracked there)."""
    if a is not None and b is not None and a.kind == b.kind == "dir":
        yield from tree.diff(store, a.digest, b.digest, path + "/")
        return
    if a is not None and b is not None and a.kind == b.kind == "file":
        if (a.digest, a.executable) != (b.digest, b.executable):
            yield path, FileRecord(a.size, a.digest, b""), FileRecord(b.size, b.digest, b"")
        return
    if a is not None:
        for p, rec in _files_of(store, path, a):
            yield p, rec, None
    if b is not None:
        for p, rec in _files_of(store, path, b):
            yield p, None, rec


def compare_files(path: str, a: dict[str, FileRecord], b: dict[str, FileRecord]) -> Iterator[tree.Change]:
    """The changes between two {relative path: record} maps of one tracked path."""
    prefix = path + "/" if path else ""
    for rel in sorted(a.keys() | b.keys()):
        ra, rb = a.get(rel), b.get(rel)
        if ra is None or rb is None or (ra.digest, ra.executable) != (rb.digest, rb.executable):
            yield prefix + rel, ra, rb


def settle_formats(changes: list[tree.Change], cache: Cache,
                   fetch: Callable[[list[FileRecord]], object] | None = None) -> list[tree.Change]:
    """The changes less those that are only a change of digest format: a file recorded in format
    1 on one side and format 2 on the other, of the same size and executable bit, whose bytes
    (the "before" side's, from the cache; what it lacks fetched first when `fetch` is given)
    have the other side's digest. Where the bytes cannot be had, the change stays (the digests differ)."""
    same_size = [i for i, (_, a, b) in enumerate(changes) if a is not None and b is not None
                 and len(a.digest) != len(b.digest) and (a.size, a.executable) == (b.size, b.executable)]
    if not same_size:
        return changes
    olds = [rec for i in same_size if (rec := changes[i][1]) is not None]
    missing = list({r.digest: r for r in olds if not cache.has_file(r.digest)}.values())
    if missing and fetch is not None:
        with contextlib.suppress(FastregError):
            fetch(missing)
    unchanged = set()
    for i in same_size:
        _, a, b = changes[i]
        assert a is not None and b is not None
        try:
            if file_digest(cache.file_path_str(a.digest), len(b.digest)) == b.digest:
                unchanged.add(i)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FileSystemError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return [c for i, c in enumerate(changes) if i not in unchanged]


def classify(changes: Iterable[tree.Change], within: list[str] | None = None) -> list[FileChange]:
    """FileChanges in path order; a deletion and an addition of the same digest pair up as a
    rename. within: only paths equal to or under one of these."""
    def wanted(p: str) -> bool:
        return within is None or any(p == w or p.startswith(w.rstrip("/") + "/") for w in within)

    out: list[FileChange] = []
    added: dict[bytes, list[FileChange]] = {}
    deleted: dict[bytes, list[FileChange]] = {}
    for path, before, after in changes:
        if not wanted(path):
            continue
        if before is None and after is not None:
            added.setdefault(after.digest, []).append(FileChange("added", path, after.size))
        elif after is None and before is not None:
            deleted.setdefault(before.digest, []).append(FileChange("deleted", path, before.size))
        elif before is not None and after is not None:
            out.append(FileChange("modified", path, after.size, before.size))
    for digest, news in added.items():
        olds = deleted.get(digest, [])
        while news and olds:
            new, old = news.pop(0), olds.pop(0)
            out.append(FileChange("renamed", new.path, new.size, old_path=old.path))
        out.extend(news)
    for olds in deleted.values():
        out.extend(olds)
    out.sort(key=lambda c: (c.path, c.kind))
    return out


# -- a project's revisions and its workspace ---------------------------------------------------
def project_diff(project: Project, a: str | None, b: str | None, targets: list[str],
                 imports: ImportOpener | None = None, jobs: int | None = None) -> DiffResult:
    """Changes from revision a (default HEAD) to revision b (default: the workspace), limited
    to targets (tracked paths or paths inside them; all by default)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastreg.repo.workspace import default_jobs, workspace_records

    commit_a = _commit(project, a or "HEAD")
    metas_a = _at(project, commit_a)
    if b is None:
        ws = {t.rel: t for t in project.metafiles()}
        metas_b = {rel: project.read_meta(t) for rel, t in ws.items()}
        label_b = "workspace"
    else:
        commit_b = _commit(project, b)
        metas_b = _at(project, commit_b)
        label_b = f"{b} ({commit_b[:10]})"
    within = [_rel(project, p) for p in targets] or None
    for user, w in zip(targets, within or [], strict=True):
        if not any(overlaps(p, w) for p in metas_a.keys() | metas_b.keys()):
            import os

            what = "a revision of this project's Git repository nor a tracked path"
            raise UsageError(f"{user}: neither {what}" + (" (it exists here, but nothing tracked is in it)"
                                                           if os.path.lexists(user) else ""))
    paths = sorted(p for p in metas_a.keys() | metas_b.keys()
                   if within is None or any(overlaps(p, w) for w in within))
    ensure_trees(project, [metas_a.get(p) for p in paths] + [metas_b.get(p) for p in paths], imports, jobs)
    changes: list[tree.Change] = []
    with ThreadPoolExecutor(jobs or default_jobs(), thread_name_prefix="fastreg-hash") as pool:
        for p in paths:
            ma, mb = metas_a.get(p), metas_b.get(p)
            if b is None and mb is not None:
                t = ws[p]
                now = workspace_records(project, t, mb, pool)
                if now is not None:  # compare with what the workspace holds
                    is_dir = t.data.is_dir()
                    after = {(f"{p}/{rel}" if is_dir else p): rec for rel, rec in now.items()}
                    before = dict(_files_of(project.cache, p, ma)) if ma is not None else {}
                    changes.extend(compare_files("", before, after))
                    continue
            changes.extend(compare_metas(project.cache, p, ma, mb))

    def fetch(records: list[FileRecord]) -> None:
        from fastreg.repo.remotes import open_remote

        _, session = open_remote(project, None, jobs)
        with session:  # a big single-file target's chunk list is on the remote, not in its metafile
            whole = [session.fetch_record(r.digest, r.size) if r.size > WHOLE_FILE_LIMIT and not r.chunks else r
                     for r in records]
            session.fetch_files(whole, [m.digest for m in metas_a.values() if m.source is None])

    changes = settle_formats(changes, project.cache, fetch)
    return DiffResult(f"{a or 'HEAD'} ({commit_a[:10]})", label_b, classify(changes, within))


def _commit(project: Project, rev: str) -> str:
    from fastreg import git_cli as git

    commit = git.commit_of(project.root, rev)
    if commit is None:
        raise UsageError(f"{rev!r} is not a revision of this project's Git repository")
    return commit


def _at(project: Project, commit: str) -> dict[str, metafile.Metafile]:
    from fastreg import git_cli as git

    return git.metafiles_at(project.root, commit, "")


def _rel(project: Project, user_path: str) -> str:
    return project.target(user_path).rel


def revisions_and_targets(project: Project, args: list[str]) -> tuple[list[str], list[str]]:
    """`fastreg diff [A [B]] [TARGET...]`: the leading arguments that name a Git revision and are
    not paths here (at most two), then the targets."""
    import os

    from fastreg import git_cli as git

    revs: list[str] = []
    targets: list[str] = []
    for arg in args:
        if not targets and len(revs) < 2 and not os.path.lexists(arg) and \
                not os.path.lexists(arg + metafile.METAFILE_SUFFIX) and git.commit_of(project.root, arg) is not None:
            revs.append(arg)
        else:
            targets.append(arg)
    return revs, targets


def overlaps(target: str, within: str) -> bool:
    """A tracked path and a selected path overlap when either contains the other."""
    return target == within or within.startswith(target + "/") or target.startswith(within + "/")


def ensure_trees(project: Project, metas: list[metafile.Metafile | None], imports: ImportOpener | None,
                  jobs: int | None) -> None:
    """Bring the tree nodes of the directories in metas into the project cache: own data from
    the project's remote, imports from their registry (only what the cache lacks)."""
    from fastreg.repo.remotes import open_remote

    missing = {m.digest: m for m in metas if m is not None and m.kind == "dir"
               and not project.cache.tree_path(m.digest).exists()}
    if not missing:
        return
    own = [m.digest for m in missing.values() if m.source is None]
    if own:
        try:
            _, session = open_remote(project, None, jobs)
        except FastregError as exc:
            raise MissingDataError(f"the trees of {len(own)} tracked {'directory' if len(own) == 1 else 'directories'} "
                               f"are not in the cache and cannot be fetched: {exc.message}") from None
        with session:
            session.fetch_trees(own)
    for m in missing.values():
        if m.source is not None:
            if imports is None:
                raise MissingDataError(f"the tree of the import {m.path} is not in the cache")
            opened = imports([m.source], project.cache, jobs)
            if opened is None:  # a plain Git file: no tree
                continue
            with opened:
                opened.fetch_trees([m.digest])

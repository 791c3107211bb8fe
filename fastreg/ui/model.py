"""What `fastreg ui` shows of a registry, as plain documents (the JSON API's; the HTML pages render
the same ones): its versions, a folder page, a file, a diff between two revisions. All of it comes
from Git, metafiles and tree nodes; the only data read is that of a file shown (its first bytes
for a preview, its header for an image's dimensions, its bytes for a thumbnail or a download).

Synchronous and thread-safe: the server calls these from a thread pool. One Reader per
commit is kept open (a reader is used by one thread at a time: its lock); a branch's commit is
believed for REV_TTL seconds before it is resolved (fetched) again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from fastreg.errors import (
    FastregError,
    MissingDataError,
    NoRemoteError,
    PathError,
    RegistryError,
    StorageError,
    UsageError,
)
from fastreg.registry import ops
from fastreg.registry.kinds import open_reader
from fastreg.registry.mirror import Mirror
from fastreg.registry.reader import Located, Reader, clean_path

if TYPE_CHECKING:
    from fastreg.repo.project import Project

PAGE = 1000  # entries on a folder or diff page
COMMITS = 100  # commits a versions page shows
REV_TTL = 10.0
PREVIEW_BYTES = 64 << 10
PREVIEW_LINES = 40
RAW_LIMIT = 256 << 20  # bytes served whole; beyond, `fastreg get`
THUMB_SOURCE_LIMIT = 64 << 20  # bytes of an image read to make its thumbnail; beyond, refused
DIFFS_KEPT = 16
READERS_KEPT = 8  # registry readers (one per commit) kept open
STATS_WAIT = 0.5  # seconds a versions page waits for changes still being computed (they show on reload)
FAILED_TTL = 60.0  # seconds a failure to read the remote is remembered (no request tries it again meanwhile)

IMAGES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
          ".gif": "image/gif"}
TEXTS = {".txt", ".csv", ".tsv", ".json", ".jsonl", ".md", ".yaml", ".yml", ".toml", ".xml", ".log", ".py",
         ".cfg", ".ini", ".html", ".rst"}


class TooLarge(UsageError):
    """A file too large to serve or thumbnail (the page says to `fastreg get` it)."""


def kind_of(name: str) -> str:
    """'image', 'text' or 'other', by the name's extension (what the page shows for it)."""
    ext = PurePosixPath(name).suffix.lower()
    if ext in IMAGES:
        return "image"
    if ext in TEXTS:
        return "text"
    return "other"


def content_type(name: str) -> str:
    """The Content-Type a file is served with: an image as itself, text as plain text (never
    HTML: a registry's file is not a page of this site), anything else as bytes."""
    ext = PurePosixPath(name).suffix.lower()
    if ext in IMAGES:
        return IMAGES[ext]
    if ext in TEXTS:
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def web_path(path: str) -> str:
    """A path from the request, as a registry path: relative, no '.', '..', empty part or NUL
    (PathError otherwise, which the server turns into a 404). '' is the registry's root."""
    if path in ("", "/"):
        return ""
    if "\0" in path or path.startswith("/") or any(p in ("", ".", "..") for p in path.rstrip("/").split("/")):
        raise PathError(f"{path!r}: not a path inside the registry")
    return clean_path(path.rstrip("/"))


def web_rev(rev: str | None) -> str | None:
    """A revision from the request (None or '': the default branch). A name Git could take for an
    option, or with whitespace or NUL in it, is no revision of the registry."""
    if not rev:
        return None
    if rev.startswith("-") or any(c.isspace() or c == "\0" for c in rev) or len(rev) > 250:
        raise PathError(f"{rev!r}: not a revision")
    return rev


class _Held:
    """A reader kept open, its lock, and how many requests are using it now."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.lock = threading.Lock()
        self.users = 0


class Registry:
    """One registry as the UI sees it. url: what readers open; project: the local project when
    the UI shows one (its cache serves tree nodes and files it has, and its workspace status is
    shown); share_url: the URL the copied commands name."""

    def __init__(self, url: str, project: Project | None = None, share_url: str | None = None) -> None:
        self.url = url
        self.project = project
        self.share_url = share_url or url
        self._lock = threading.Lock()
        self._revs: dict[str, tuple[float, str]] = {}
        self._readers: OrderedDict[str, _Held] = OrderedDict()
        self._stats: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._diffs: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        # the changes of a versions page, computed in the background: nothing there waits on data
        self._changes: dict[tuple[str, str], Future[dict[str, Any]]] = {}
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="fastreg-ui-changes")
        self._down: tuple[float, str] | None = None  # (until, why): the remote failed a read lately

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            readers, self._readers = self._readers, OrderedDict()
        for h in readers.values():
            with h.lock:
                h.reader.close()

    # -- revisions and readers ----------------------------------------------------------------------
    def commit_of(self, rev: str | None) -> str:
        key = rev or ""
        now = time.monotonic()
        with self._lock:
            known = self._revs.get(key)
        if known is not None and now - known[0] < REV_TTL:
            return known[1]
        commit = Mirror(self.url).resolve(rev).commit
        with self._lock:
            self._revs[key] = (now, commit)
        return commit

    def kind(self) -> str:
        """'fastreg' or 'dvc': what the registry is at its default branch."""
        with self.reading(self.commit_of(None)) as (reg,):
            return reg.kind

    @contextlib.contextmanager
    def reading(self, *commits: str) -> Iterator[list[Reader]]:
        """Readers of these commits, each held by this thread meanwhile (locks taken in commit
        order, so two threads wanting the same pair never wait on each other). READERS_KEPT
        readers stay open between requests, the least recently used closed beyond that."""
        held: list[_Held] = []
        try:
            for commit in commits:
                with self._lock:
                    h = self._readers.get(commit)
                    if h is not None:
                        h.users += 1
                        self._readers.move_to_end(commit)
                if h is None:
                    cache = self.project.cache if self.project is not None else None
                    reg = open_reader(self.url, commit, cache=cache)
                    with self._lock:
                        h = self._readers.setdefault(commit, _Held(reg))
                        h.users += 1
                    if h.reader is not reg:
                        reg.close()
                held.append(h)
            with contextlib.ExitStack() as stack:
                for h in sorted({id(h): h for h in held}.values(), key=lambda h: h.reader.commit):
                    stack.enter_context(h.lock)
                yield [h.reader for h in held]
        finally:
            idle = []
            with self._lock:
                for h in held:
                    h.users -= 1
                while len(self._readers) > READERS_KEPT:
                    unused = next((c for c, h in self._readers.items() if h.users == 0), None)
                    if unused is None:
                        break
                    idle.append(self._readers.pop(unused))
            for h in idle:
                h.reader.close()

    def refs(self) -> list[tuple[str, str, str]]:
        """(name, "branch"|"tag", commit) of every branch and tag, the registry fetched first when
        its default branch is due (REV_TTL)."""
        self.commit_of(None)
        return Mirror(self.url).refs()

    def commands(self, path: str, rev: str | None) -> dict[str, str]:
        """The commands that reach path at rev, ready to paste into a shell."""
        import shlex

        at = f" --rev {shlex.quote(rev)}" if rev else ""
        url, p = shlex.quote(self.share_url), shlex.quote(path)
        return {"get": f"fastreg get {url} {p}{at}", "import": f"fastreg import {url} {p}{at}"}

    # -- versions -----------------------------------------------------------------------------------
    def versions(self, page: int = 1) -> dict[str, Any]:
        """Refs, the commits that changed tracked data (COMMITS a page, newest first), and the
        workspace's status in project mode."""
        head = self.commit_of(None)
        refs = self.refs()
        names: dict[str, list[dict[str, str]]] = {}
        for name, kind, commit in refs:
            names.setdefault(commit, []).append({"name": name, "kind": kind})
        commits = []
        kind = self.kind()
        specs = ["*.dvc", "*dvc.lock"] if kind == "dvc" else ["*.fastreg"]
        page = max(page, 1)
        found = Mirror(self.url).log(COMMITS + 1, specs, skip=(page - 1) * COMMITS)
        deadline = time.monotonic() + STATS_WAIT
        for c in found[:COMMITS]:
            commits.append({"commit": c.sha, "parents": list(c.parents), "time": c.time, "author": c.author,
                            "subject": c.subject, "refs": names.get(c.sha, []),
                            **self.stats(c.sha, c.parents[0] if c.parents else None, deadline)})
        return {"url": self.share_url, "kind": kind, "head": head,
                "refs": [{"name": n, "kind": k, "commit": c} for n, k, c in refs],
                "commits": commits, "page": page, "more": len(found) > COMMITS,
                "workspace": self.workspace() if page == 1 else None}

    def stats(self, commit: str, parent: str | None, deadline: float | None = None) -> dict[str, Any]:
        """A commit's tracked data (files, bytes: its metafiles, from Git) and what changed against
        its parent (a diff, which may need tree nodes or manifests from the remote). The diff runs
        in the background; a caller with a deadline gets `"changes": null, "pending": true` when
        it is not done by then (the next request shows it), and a remote that failed a read is not
        asked again for FAILED_TTL seconds (`"changes_error"` says why)."""
        key = (commit, parent)
        with self._lock:
            known = self._stats.get(key)
        if known is not None:
            return known
        try:
            with self.reading(commit) as (reg,):
                metas = reg.metafiles()
        except FastregError as exc:
            return {"error": exc.message}
        sizes = [m.size for m in metas.values()]
        doc: dict[str, Any] = {"files": sum((m.files or 0) if m.kind == "dir" else 1 for m in metas.values()),
                               "bytes": None if None in sizes else sum(sizes)}
        if parent is None:
            doc["changes"] = {"added": {"files": doc["files"], "bytes": doc["bytes"]}}
            with self._lock:
                self._stats[key] = doc
            return doc
        future = self._changes_of(parent, commit)
        try:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            changes = future.result(timeout=wait)
        except FutureTimeout:
            return {**doc, "changes": None, "pending": True}
        if "error" in changes:
            return {**doc, "changes": None, "changes_error": changes["error"]}
        doc["changes"] = changes
        with self._lock:
            self._stats[key] = doc
        return doc

    def _changes_of(self, parent: str, commit: str) -> Future[dict[str, Any]]:
        """The diff summary from parent to commit, computed once in the background ({"error": why}
        when it could not be: kept FAILED_TTL seconds, then tried again)."""
        key = (parent, commit)
        with self._lock:
            future = self._changes.get(key)
            if future is not None and future.done():
                result = future.result()
                if "error" in result and result.get("until", 0.0) < time.monotonic():
                    future = None  # a failure long enough ago: try again
            if future is None:
                future = self._pool.submit(self._summary, parent, commit)
                self._changes[key] = future
        return future

    def _summary(self, parent: str, commit: str) -> dict[str, Any]:
        with self._lock:
            down = self._down
        now = time.monotonic()
        if down is not None and down[0] > now:
            return {"error": down[1], "until": down[0]}
        try:
            return dict(self.diff(parent, commit, None).summary())
        except FastregError as exc:
            until = time.monotonic() + FAILED_TTL
            if isinstance(exc, StorageError | NoRemoteError):  # the remote itself, not one commit
                with self._lock:
                    self._down = (until, exc.message)
            return {"error": exc.message, "until": until}

    def workspace(self) -> dict[str, Any] | None:
        """The project's workspace against its last commit, as `fastreg status` sees it."""
        if self.project is None:
            return None
        from fastreg.repo.status import status

        try:
            found = status(self.project, [])
        except FastregError as exc:
            return {"error": exc.message}
        return {"paths": len(found), "changed": [
            {"path": t.target.rel, "state": t.state.value, "added": len(t.added), "modified": len(t.modified),
             "deleted": len(t.deleted)} for t in found if t.changed]}

    # -- folders and files --------------------------------------------------------------------------
    def folder(self, rev: str | None, path: str, page: int = 1) -> dict[str, Any]:
        """A folder page (entries sorted folders first, PAGE a page), or the file path is."""
        commit = self.commit_of(rev)
        with self.reading(commit) as (reg,):
            loc = _file_at(reg, path) if path else None
            if loc is not None:
                return self._file(reg, loc, rev, commit)
            entries = ops.list_at(reg, path or None, False, False)
        items = sorted(({"name": e.path.rpartition("/")[2], "path": e.path, "type": e.type, "size": e.size,
                         "files": e.files, "tracked": e.tracked, "import": e.to_json().get("import"),
                         "kind": "folder" if e.type == "dir" else kind_of(e.path)} for e in entries),
                       key=lambda d: (d["type"] != "dir", d["name"]))
        pages = max(1, -(-len(items) // PAGE))
        page = min(max(page, 1), pages)
        return {"kind": "folder", "rev": rev, "commit": commit, "path": path, "page": page, "pages": pages,
                "total": len(items), "entries": items[(page - 1) * PAGE: page * PAGE],
                "commands": self.commands(path, rev) if path else None}

    def file(self, rev: str | None, path: str) -> dict[str, Any]:
        commit = self.commit_of(rev)
        with self.reading(commit) as (reg,):
            return self._file(reg, _a_file(reg, path), rev, commit)

    def _file(self, reg: Reader, loc: Located, rev: str | None, commit: str) -> dict[str, Any]:
        path = loc.path
        size, digest = _identity(reg, loc)
        kind = kind_of(path)
        doc: dict[str, Any] = {"kind": "file", "rev": rev, "commit": commit, "path": path, "size": size,
                               "digest": digest, "tracked": loc.meta is not None, "type": content_type(path),
                               "show": kind, "image": None, "preview": None, "commands": self.commands(path, rev)}
        doc["unreadable"] = None
        try:  # the page's metadata stands without the bytes: a remote that fails is said, not a 502
            if kind == "image" and size != 0:
                doc["image"] = _image_info(reg, loc)
            elif kind == "text":
                with reg.open(loc) as f:
                    head = f.read(PREVIEW_BYTES) or b""
                lines = head.decode("utf-8", errors="replace").splitlines()
                more = len(lines) > PREVIEW_LINES or (size or 0) > len(head)
                doc["preview"] = {"lines": lines[:PREVIEW_LINES], "more": more}
        except (StorageError, RegistryError, MissingDataError) as exc:
            doc["unreadable"] = exc.message
        return doc

    def read(self, rev: str | None, path: str, limit: int = RAW_LIMIT) -> tuple[bytes, str | None]:
        """A file's bytes (verified as it is read) and its digest (hex; None for a Git file)."""
        with self.reading(self.commit_of(rev)) as (reg,):
            loc = _a_file(reg, path)
            size, digest = _identity(reg, loc)
            return self._bytes(reg, loc, rev, size, limit), digest

    def _bytes(self, reg: Reader, loc: Located, rev: str | None, size: int | None, limit: int) -> bytes:
        """A located file's bytes (a tracked one's verified as read; a Git file's from Git)."""
        if size is not None and size > limit:
            raise TooLarge(f"{loc.path}: {size} bytes, more than this page shows; "
                           f"`{self.commands(loc.path, rev)['get']}` brings it")
        with reg.open(loc) as f:
            return f.read() or b""

    def thumbnail(self, rev: str | None, path: str) -> bytes:
        """A JPEG of at most thumbs.SIZE pixels a side, made once per file content and kept on disk."""
        from fastreg.ui import thumbs

        if kind_of(path) != "image":
            raise PathError(f"{path}: not an image")
        with self.reading(self.commit_of(rev)) as (reg,):
            loc = _a_file(reg, path)
            size, digest = _identity(reg, loc)
            kept = thumbs.kept(digest) if digest else None
            if kept is not None:
                return kept
            data = self._bytes(reg, loc, rev, size, THUMB_SOURCE_LIMIT)
        return thumbs.make(data, digest)  # decoded outside the reader's lock

    # -- diff ---------------------------------------------------------------------------------------
    def diff(self, a: str | None, b: str | None, path: str | None) -> Any:
        """`fastreg diff --repo`'s result (a DiffResult) between two revisions, kept for a while."""
        ca, cb = self.commit_of(a), self.commit_of(b)
        key = (ca, cb, path or "")
        with self._lock:
            known = self._diffs.get(key)
            if known is not None:
                self._diffs.move_to_end(key)
                return known
        with self.reading(ca, cb) as readers:
            reg_a, reg_b = readers
            res = ops.diff_readers(reg_a, reg_b, path, (a or ca[:10], b or "default branch"))
        with self._lock:
            self._diffs[key] = res
            while len(self._diffs) > DIFFS_KEPT:
                self._diffs.popitem(last=False)
        return res

    def diff_doc(self, a: str | None, b: str | None, path: str | None, page: int = 1) -> dict[str, Any]:
        from fastreg.text import diff_summary

        res = self.diff(a, b, path)
        changes = [{"kind": c.kind, "path": c.path, "size": c.size, "old_size": c.old_size,
                    "old_path": c.old_path, "show": kind_of(c.path)} for c in res.changes]
        pages = max(1, -(-len(changes) // PAGE))
        page = min(max(page, 1), pages)
        summary = res.summary()
        return {"a": a, "b": b, "a_label": res.a, "b_label": res.b, "path": path, "summary": summary,
                "summary_text": diff_summary(summary), "page": page, "pages": pages, "total": len(changes),
                "changes": changes[(page - 1) * PAGE: page * PAGE]}


def _file_at(reg: Reader, path: str) -> Located | None:
    """The file at path at the reader's commit; None when path is a folder (of the Git repository
    or of tracked data); MissingPathError when nothing is there. Metadata only."""
    from fastreg.errors import DirectoryPathError

    try:
        loc = reg.locate(path)
    except DirectoryPathError:
        return None
    if loc.meta is None:
        return loc
    if loc.subpath is None:
        return loc if loc.meta.kind == "file" else None
    return loc if reg.stat(loc).kind == "file" else None  # MissingPathError when not in the tree


def _a_file(reg: Reader, path: str) -> Located:
    loc = _file_at(reg, path)
    if loc is None:
        raise PathError(f"{path}: a folder, not a file")
    return loc


def _identity(reg: Reader, loc: Located) -> tuple[int | None, str | None]:
    """A file's size (None: the registry does not record it) and content digest, from metadata
    only (Reader.identity)."""
    ident = reg.identity(loc)
    return ident.size, ident.digest


def _image_info(reg: Reader, loc: Located) -> dict[str, Any] | None:
    """An image's format and dimensions from its first bytes (None without Pillow, or when it is
    not an image Pillow reads)."""
    from fastreg.ui import thumbs

    with reg.open(loc) as f:
        return thumbs.info(f)

"""Metafiles (PATH.fastreg): the small text file committed to Git that says which bytes make up
PATH.  TOML, written by tomli-w with a fixed key order, so re-serializing gives the same text and
a pull-request diff shows exactly what changed (digest, size, file count, import source)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from fastreg.errors import MetafileError, UnmergedError
from fastreg.objects.digest import FORMATS, from_hex, to_hex

METAFILE_SUFFIX = ".fastreg"
#: The newest metafile format: 2 names the data by SHA-256 (64 hex characters), 1 by XXH3-128
#: (32); a metafile's format is its digest's (objects/digest.py), and both are read.
METAFILE_VERSION = 2
_HEADER = "# fastreg metafile: commit this file to Git; the data it describes is git-ignored.\n"


@dataclass(frozen=True, slots=True)
class ImportSource:
    url: str
    path: str
    rev: str | None
    rev_lock: str


@dataclass(frozen=True, slots=True)
class Metafile:
    path: str  # the data's name, relative to the metafile's folder
    kind: Literal["dir", "file"]
    digest: bytes  # tree digest for a directory, file digest for a file
    size: int
    files: int
    executable: bool = False
    source: ImportSource | None = None
    # Left by a merge that could not decide (objects/merge.py): one line per path changed two
    # ways ("PATH: modified in ours, deleted in theirs"). Such a metafile is unmerged: only status,
    # add and `fastreg merge` read it.
    conflicts: tuple[str, ...] = ()


def dumps(meta: Metafile) -> str:
    import tomli_w  # only writers pay for it

    doc: dict[str, Any] = {
        "format": FORMATS[len(meta.digest)],
        "path": meta.path,
        "type": meta.kind,
        "digest": to_hex(meta.digest),
        "size": meta.size,
        "files": meta.files,
    }
    if meta.executable:
        doc["executable"] = True
    if meta.source is not None:
        src: dict[str, Any] = {"url": meta.source.url, "path": meta.source.path}
        if meta.source.rev is not None:
            src["rev"] = meta.source.rev
        src["rev_lock"] = meta.source.rev_lock
        doc["import"] = src
    if meta.conflicts:
        doc["merge"] = {"conflicts": list(meta.conflicts)}
        return _HEADER + _CONFLICT_HEADER + tomli_w.dumps(doc)
    return _HEADER + tomli_w.dumps(doc)


_CONFLICT_HEADER = ("# UNMERGED: both sides changed the paths under [merge]; `fastreg merge --ours|--theirs` "
                    "or `fastreg add` resolves it.\n")
CONFLICT_MARKER = "<<<<<<< "


def unmerged_hint(target: str, markers: bool = False) -> str:
    """The commands that resolve an unmerged metafile, for every message that meets one: Git's
    conflict markers (a clone without the driver) merge again by path; conflicts the driver
    recorded need a side taken or the data fixed. Then Git needs the metafile, not the data."""
    meta = target if target.endswith(METAFILE_SUFFIX) else target + METAFILE_SUFFIX
    target = meta[: -len(METAFILE_SUFFIX)]
    if markers:
        return (f"merge it by path with `fastreg merge {target}` (what both sides changed is kept), then "
                f"`git add {meta}`")
    return (f"take a side with `fastreg merge --ours {target}` (or --theirs), or fix the data and "
            f"`fastreg add {target}`; then `git add {meta}`")


def loads(text: str, where: str) -> Metafile:
    """Parse a metafile; any deviation is a MetafileError naming `where`."""

    def bad(why: str) -> MetafileError:
        return MetafileError(
            f"{where}: invalid metafile ({why}); restore it with `git checkout -- {where}` "
            "or re-create it with `fastreg add`"
        )

    if text.startswith(CONFLICT_MARKER) or "\n" + CONFLICT_MARKER in text:
        raise UnmergedError(f"{where}: unmerged (Git left conflict markers in it: fastreg's merge driver was "
                            f"not registered in this clone when it merged); {unmerged_hint(where, markers=True)}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise bad(f"not TOML: {exc}") from None
    fmt = doc.get("format")
    if isinstance(fmt, int) and fmt > METAFILE_VERSION:
        raise MetafileError(f"{where}: metafile format {fmt} is newer than this fastreg reads; upgrade fastreg")
    if fmt not in (1, 2) or isinstance(fmt, bool):
        raise bad("format must be 1 or 2")
    known = {"format", "path", "type", "digest", "size", "files", "executable", "import", "merge"}
    if unknown := set(doc) - known:
        raise bad(f"unknown keys {sorted(unknown)}")
    path, kind = doc.get("path"), doc.get("type")
    if not isinstance(path, str) or not path or "/" in path or path in (".", ".."):
        raise bad("'path' must be a plain file or directory name")
    if kind not in ("dir", "file"):
        raise bad("'type' must be \"dir\" or \"file\"")
    try:
        digest = from_hex(doc.get("digest"))  # type: ignore[arg-type]
        if FORMATS[len(digest)] != fmt:
            raise ValueError
    except ValueError:
        raise bad(f"'digest' must be {64 if fmt == 2 else 32} lowercase hex characters (format {fmt})") from None
    size, files = doc.get("size"), doc.get("files")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("'size' must be a non-negative integer")
    if not isinstance(files, int) or isinstance(files, bool) or files < 0 or (kind == "file" and files != 1):
        raise bad("'files' must be a non-negative integer (1 for a file)")
    executable = doc.get("executable", False)
    if not isinstance(executable, bool):
        raise bad("'executable' must be true or false")
    source = None
    if "import" in doc:
        src = doc["import"]
        if not isinstance(src, dict) or set(src) - {"url", "path", "rev", "rev_lock"}:
            raise bad("[import] may only hold url, path, rev, rev_lock")
        vals = [src.get(k) for k in ("url", "path", "rev_lock")]
        if not all(isinstance(v, str) and v for v in vals) or not isinstance(src.get("rev", ""), str):
            raise bad("[import] needs url, path and rev_lock strings")
        source = ImportSource(src["url"], src["path"], src.get("rev"), src["rev_lock"])
    conflicts: tuple[str, ...] = ()
    if "merge" in doc:
        m = doc["merge"]
        if not (isinstance(m, dict) and set(m) == {"conflicts"} and isinstance(m["conflicts"], list)
                and all(isinstance(c, str) for c in m["conflicts"]) and m["conflicts"]):
            raise bad("[merge] may only hold a non-empty list of conflicts")
        conflicts = tuple(m["conflicts"])
    return Metafile(path, kind, digest, size, files, executable, source, conflicts)

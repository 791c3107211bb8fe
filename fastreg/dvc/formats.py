"""DVC's metadata, parsed strictly: `.dvc` files, `dvc.lock` (schema 2.0), `.dir` manifests and
`.dvc/config`. What these formats say (from DVC's documentation and the files DVC writes):

- A `.dvc` file has `outs:`, each with `path` (relative to the `.dvc` file's folder, or to its
  `wdir`), `md5` (a `.dir` suffix for a directory), `size`, `nfiles`, and `hash: md5` when DVC 3
  wrote it; without `hash:` the md5 is DVC 2's "md5-dos2unix" (see md5.py). `cache: false`
  marks an out whose bytes are in Git, `isexec: true` an executable file, `remote:` a remote of
  its own; a directory out may list its files inline (`files:`) instead of naming a manifest.
- `dvc.lock` lists `stages: NAME: outs:` with the same fields, paths relative to the folder of
  its `dvc.yaml`.
- A `.dir` manifest is a JSON list of `{"md5": ..., "relpath": ...}` (more keys allowed); its
  name is the md5 of `json.dumps(entries sorted by relpath, sort_keys=True)` plus `.dir`, so a
  manifest is verified by serializing what was parsed, never by hashing the bytes as sent.
- `.dvc/config` is INI: `[core] remote = NAME` and `['remote "NAME"'] url = ...` (for S3 also
  `endpointurl`, `region`, `profile`); a relative local url is relative to `.dvc/`.
"""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from fastreg.errors import MetafileError

_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class DvcFile:
    """One file of a DVC out: its md5 (hex) under DVC's rule for it (legacy: md5-dos2unix)."""

    md5: str
    legacy: bool
    size: int | None = None  # a manifest entry rarely says
    executable: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        return self.md5, self.legacy


@dataclass(frozen=True, slots=True)
class ImportedFrom:
    """Where an import stage's data lives: a path of another registry at a commit."""

    url: str
    rev_lock: str
    path: str
    rev: str | None = None  # the branch or tag `dvc import --rev` followed, if any


@dataclass(frozen=True, slots=True)
class Out:
    """One tracked path of a DVC registry, as its `.dvc` file or `dvc.lock` records it."""

    path: str  # from the registry's root
    kind: Literal["file", "dir"]
    md5: str  # hex; a directory's is its manifest's (without ".dir")
    legacy: bool
    size: int | None
    files: int | None
    origin: str  # the .dvc file or dvc.lock it comes from
    cache: bool = True  # False: the bytes are in Git
    executable: bool = False
    remote: str | None = None
    inline: tuple[tuple[str, DvcFile], ...] | None = None  # a directory's files listed in place
    pipeline: bool = False  # an output of a dvc.lock stage
    source: ImportedFrom | None = None  # a `dvc import`: the data is the source registry's

    @property
    def file(self) -> DvcFile:
        return DvcFile(self.md5, self.legacy, self.size, self.executable)


def _yaml(data: bytes, where: str) -> Any:
    try:
        return yaml.safe_load(data.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MetafileError(f"{where} is not valid YAML ({first})") from None


def _rel(base: str, path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise MetafileError(f"{where}: an out without a path")
    joined = posixpath.normpath(posixpath.join(base, path.replace("\\", "/")))
    if joined.startswith(("../", "/")) or joined in ("..", "."):
        raise MetafileError(f"{where}: the out path {path!r} leaves the repository")
    return joined


def _out(raw: Any, base: str, where: str, legacy_default: bool, pipeline: bool = False) -> Out:
    if not isinstance(raw, dict):
        raise MetafileError(f"{where}: an out is not a mapping")
    path = _rel(base, raw.get("path"), where)
    hash_name = raw.get("hash")
    if hash_name not in (None, "md5"):
        raise MetafileError(f"{where}: {path}: hash {hash_name!r} is not one fastreg reads (md5)")
    legacy = legacy_default if hash_name is None else False
    md5 = raw.get("md5")
    cache = raw.get("cache", True) is not False
    inline = None
    if isinstance(raw.get("files"), list):
        inline = tuple(_entries(raw["files"], f"{where}: {path}", legacy))
    if md5 is None and inline is None:
        if not cache:
            return Out(path, "file", "", legacy, _int(raw.get("size")), None, where, cache=False, pipeline=pipeline)
        raise MetafileError(f"{where}: {path} has no md5 (not committed with `dvc commit`?)")
    if md5 is not None and not isinstance(md5, str):
        raise MetafileError(f"{where}: {path}: md5 {md5!r} is not a string")
    is_dir = inline is not None or (md5 or "").endswith(".dir")
    digest = (md5 or "").removesuffix(".dir")
    if md5 is not None and not _MD5.fullmatch(digest):
        raise MetafileError(f"{where}: {path}: md5 {md5!r} is not 32 hex digits")
    return Out(path, "dir" if is_dir else "file", digest, legacy, _int(raw.get("size")),
               _int(raw.get("nfiles")) if is_dir else None, where, cache, raw.get("isexec") is True,
               raw.get("remote") if isinstance(raw.get("remote"), str) else None, inline, pipeline)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_dvcfile(data: bytes, path: str, where: str | None = None) -> list[Out]:
    """The outs of one `.dvc` file at `path` (from the registry's root); `where` names it in
    errors (default: path)."""
    where = where or path
    doc = _yaml(data, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("outs"), list):
        raise MetafileError(f"{where}: a .dvc file needs a list of outs")
    base = posixpath.dirname(path)
    wdir = doc.get("wdir")
    if isinstance(wdir, str):
        base = _rel(base, wdir, where) if posixpath.normpath(posixpath.join(base, wdir)) != "." else ""
    outs = [_out(o, base, where, True) for o in doc["outs"]]  # DVC 3 writes hash: md5 on each out
    source = _import_source(doc, where)
    return [dataclasses.replace(o, source=source) for o in outs] if source is not None else outs


def _import_source(doc: dict[str, Any], where: str) -> ImportedFrom | None:
    """An import stage (`dvc import`: frozen, one dep with `repo: {url, rev_lock}`): where its data
    is; None for any other stage."""
    deps = doc.get("deps")
    if not (isinstance(deps, list) and len(deps) == 1 and isinstance(deps[0], dict)):
        return None
    repo = deps[0].get("repo")
    if not isinstance(repo, dict):
        return None
    url, lock, dep_path = repo.get("url"), repo.get("rev_lock"), deps[0].get("path")
    if not (isinstance(url, str) and isinstance(lock, str) and isinstance(dep_path, str)) or not url.strip():
        raise MetafileError(f"{where}: an import stage needs deps[0].path, repo.url and repo.rev_lock")
    rev = repo.get("rev")
    return ImportedFrom(url, lock, _rel("", dep_path, where), rev if isinstance(rev, str) else None)


def parse_lock(data: bytes, path: str, where: str | None = None) -> list[Out]:
    """The stage outs of one `dvc.lock` at `path`: schema 2.0 (DVC 2 and 3: `stages:`) or DVC
    1.x's (the stages at the top level, outs with `md5` and no `hash`)."""
    where = where or path
    doc = _yaml(data, where)
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("stages", {}), dict):
        raise MetafileError(f"{where}: a dvc.lock needs a mapping of stages")
    if doc.get("schema") not in ("2.0", None):
        raise MetafileError(f"{where}: dvc.lock schema {doc.get('schema')!r} is not one fastreg reads (2.0)")
    # DVC 1.x wrote the stages at the top level, with no `schema` key (DVC 2 and 3 still read it)
    stages = doc if "schema" not in doc and "stages" not in doc else (doc.get("stages") or {})
    base = posixpath.dirname(path)
    out = []
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            raise MetafileError(f"{where}: stage {name!r} is not a mapping")
        for o in stage.get("outs") or []:
            out.append(_out(o, base, f"{where} (stage {name})", True, pipeline=True))
    return out


def uncached_outs(data: bytes, path: str, where: str | None = None) -> set[str]:
    """The paths (from the registry's root) that the stages of one `dvc.yaml` at `path` declare
    with `cache: false`, under `outs`, `metrics` or `plots`: Git files (or nothing), whatever
    the lock records for them (a lock does not say which outs are cached)."""
    where = where or path
    doc = _yaml(data, where)
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return set()
    base = posixpath.dirname(path)
    found: set[str] = set()
    for stage in stages.values():
        if not isinstance(stage, dict):
            continue
        wdir = stage.get("wdir")
        sbase = _rel(base, wdir, where) if isinstance(wdir, str) and \
            posixpath.normpath(posixpath.join(base, wdir)) != "." else base
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                # `- path: {cache: false}`, a mapping of one path to its options
                if isinstance(entry, dict) and len(entry) == 1:
                    (out_path, opts), = entry.items()
                    if isinstance(out_path, str) and isinstance(opts, dict) and opts.get("cache") is False:
                        found.add(_rel(sbase, out_path, where))
    return found


def _entries(raw: Any, where: str, legacy: bool) -> list[tuple[str, DvcFile]]:
    if not isinstance(raw, list):
        raise MetafileError(f"{where}: a directory manifest must be a list of entries")
    out = []
    for e in raw:
        if not isinstance(e, dict) or not isinstance(e.get("relpath"), str) or not isinstance(e.get("md5"), str):
            raise MetafileError(f"{where}: a manifest entry needs md5 and relpath: {str(e)[:80]}")
        rel = e["relpath"].replace("\\", "/")
        # normpath only for a path that may need it: a manifest of 100k plain names is common
        suspect = not rel or rel[0] in "/." or "/." in rel or "//" in rel or rel[-1] == "/" or "\0" in rel
        if suspect and (posixpath.normpath(rel) != rel or rel.startswith(("/", "../")) or "\0" in rel
                        or rel in ("", ".", "..")):
            raise MetafileError(f"{where}: unsafe path {e['relpath']!r} in the manifest")
        if not _MD5.fullmatch(e["md5"]):
            raise MetafileError(f"{where}: {rel}: md5 {e['md5']!r} is not 32 hex digits")
        out.append((rel, DvcFile(e["md5"], legacy, _int(e.get("size")), e.get("isexec") is True)))
    return out


def manifest_md5(entries: list[Any]) -> str:
    """DVC's name of a manifest: md5 of its canonical JSON (entries sorted by relpath)."""
    ordered = sorted(entries, key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(ordered, sort_keys=True).encode()).hexdigest()


def parse_manifest(data: bytes, md5: str, legacy: bool, where: str) -> list[tuple[str, DvcFile]]:
    """A `.dir` manifest, verified against its name; (relpath, file) in relpath order."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetafileError(f"{where}: the manifest {md5}.dir is not JSON ({exc})") from None
    entries = _entries(raw, where, legacy)
    if manifest_md5(raw) != md5:
        raise MetafileError(f"{where}: the manifest {md5}.dir does not match its md5 (edited or damaged); "
                            "refusing to read it")
    seen: set[str] = set()
    for rel, _ in entries:
        if rel in seen:
            raise MetafileError(f"{where}: {rel} appears twice in the manifest {md5}.dir")
        seen.add(rel)
    return sorted(entries)


@dataclass(frozen=True, slots=True)
class DvcRemote:
    name: str
    url: str
    options: dict[str, str]

    @property
    def kind(self) -> str:
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else "local"
        return {"http": "http", "https": "http", "file": "local"}.get(scheme, scheme)  # s3, gs, ssh, local, ...


def parse_config(data: bytes, where: str) -> tuple[str | None, dict[str, DvcRemote]]:
    """(default remote name, remotes) of a `.dvc/config`."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(data.decode())
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise MetafileError(f"{where} does not parse ({str(exc).splitlines()[0]})") from None
    return config_remotes(parser)


def config_remotes(parser: configparser.ConfigParser) -> tuple[str | None, dict[str, DvcRemote]]:
    """(default remote name, remotes) of a parsed DVC config (`config` with `config.local` over
    it, for a work tree: where DVC users keep their secrets)."""
    remotes = {}
    default = None
    for section in parser.sections():
        name = section.strip()
        if len(name) > 1 and name[0] == name[-1] == "'":
            name = name[1:-1].strip()  # DVC quotes a section whose name holds quotes
        values = {k: v.strip().strip("'\"") for k, v in parser.items(section)}
        m = re.fullmatch(r'remote\s+"(.+)"', name)
        if m and "url" in values:
            remotes[m.group(1)] = DvcRemote(m.group(1), values["url"], values)
        elif name == "core":
            default = values.get("remote")
    return default, remotes

"""The git CLI, run for the project (its work tree) and for registries (bare mirrors): the one
place fastreg starts git and parses its output. Git is never asked to prompt for credentials
(a command that needs them fails instead of hanging)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from fastreg.errors import GitError, MetafileError, one_line
from fastreg.objects import metafile

SHA = re.compile(r"[0-9a-f]{40}")


def run(args: list[str], cwd: Path | None = None, data: bytes | None = None, check: bool = True,
        what: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        p = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env=env, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed; fastreg needs it for this") from None
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"{what or 'git ' + args[0]} failed: {err[-1] if err else 'exit ' + str(p.returncode)}")
    return p


@contextlib.contextmanager
def started(args: list[str], cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A git command running in the background while the caller does something else; read its
    output with communicate(). Stopped if the caller leaves early."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        p = subprocess.Popen(["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        raise GitError("git is not installed; fastreg needs it for this") from None
    try:
        yield p
    finally:
        if p.stdout is not None and not p.stdout.closed:  # the caller did not read it
            if p.poll() is None:
                p.kill()
            p.communicate()


def commit_of(cwd: Path, rev: str) -> str | None:
    """The commit rev names (branch, tag, full or short sha, HEAD~1...), or None."""
    p = run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=cwd, check=False)
    out = p.stdout.decode().strip()
    return out if p.returncode == 0 and SHA.fullmatch(out) else None


def ls_tree(cwd: Path, commit: str, path: str = "", recursive: bool = True,
            sizes: bool = False) -> Iterator[tuple[str, str, str, int]]:
    """(path, type, object sha, size) of the entries under path at commit ('' = all; run in a
    work tree's subdirectory, paths are relative to it). Sizes only with sizes=True (else 0)."""
    args = ["ls-tree", "-z"] + (["-l"] if sizes else []) + (["-r"] if recursive else []) + [commit]
    if path:
        args += ["--", path]
    out = run(args, cwd=cwd, what="git ls-tree").stdout
    for line in out.split(b"\0"):
        if not line:
            continue
        info, _, name = line.partition(b"\t")
        fields = info.split()
        if len(fields) < (4 if sizes else 3) or not SHA.fullmatch(fields[2].decode(errors="replace")):
            shown = one_line(line.decode(errors="replace"))[:120]
            raise GitError(f"git ls-tree printed a line fastreg cannot read ({shown}); the repository at {cwd} "
                           "may be damaged")
        if sizes and fields[3] != b"-" and not fields[3].isdigit():
            raise GitError(f"{name.decode(errors='replace')}: its Git object {fields[2].decode()} is missing from "
                           f"{cwd} (a damaged or partial clone); fetch it again or ask the registry's maintainers")
        size = int(fields[3]) if sizes and fields[3] != b"-" else 0
        yield name.decode(errors="replace"), fields[1].decode(), fields[2].decode(), size


def cat_blobs(cwd: Path, shas: list[str]) -> Iterator[bytes]:
    """The contents of blobs, in order, with one `git cat-file --batch`."""
    if not shas:
        return
    out = run(["cat-file", "--batch"], cwd=cwd, data="".join(s + "\n" for s in shas).encode()).stdout
    pos = 0
    for _ in shas:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) < 3 or header[1] == b"missing":
            raise GitError(f"git object {header[0].decode(errors='replace')} is missing")
        size = int(header[2])
        yield out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1


def cat_files(cwd: Path, specs: list[str]) -> list[bytes | None]:
    """Blobs by name (`<commit>:<path>`), in order, with one `git cat-file --batch`; None for a
    name that is missing or not a blob."""
    if not specs:
        return []
    if any("\n" in s for s in specs):  # --batch reads one name a line: such a name is asked alone
        batched = iter(cat_files(cwd, [s for s in specs if "\n" not in s]))
        return [_cat_one(cwd, s) if "\n" in s else next(batched) for s in specs]
    out = run(["cat-file", "--batch"], cwd=cwd, data="".join(s + "\n" for s in specs).encode()).stdout
    found: list[bytes | None] = []
    pos = 0
    for _ in specs:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if header[-1] == b"missing" or len(header) < 3:
            found.append(None)
            pos = header_end + 1
            continue
        size = int(header[2])
        found.append(out[header_end + 1 : header_end + 1 + size] if header[1] == b"blob" else None)
        pos = header_end + 1 + size + 1
    return found


def _cat_one(cwd: Path, spec: str) -> bytes | None:
    p = run(["cat-file", "blob", spec], cwd=cwd, check=False)
    return p.stdout if p.returncode == 0 else None


def metafiles_at(cwd: Path, commit: str, where: str) -> dict[str, metafile.Metafile]:
    """Every metafile in the tree of commit, as target path -> Metafile (one ls-tree and one
    cat-file for all of them)."""
    found = [(name, sha) for name, typ, sha, _ in ls_tree(cwd, commit)
             if typ == "blob" and name.endswith(metafile.METAFILE_SUFFIX) and "/.fastreg/" not in "/" + name]
    out = {}
    for (name, _), data in zip(found, cat_blobs(cwd, [sha for _, sha in found]), strict=True):
        try:
            target = name[: -len(metafile.METAFILE_SUFFIX)]
            out[target] = metafile.loads(data.decode(), f"{where}:{name} at {commit[:10]}")
        except UnicodeDecodeError:
            raise MetafileError(f"{where}:{name} at {commit[:10]} is not text") from None
    return out

"""The local cache: whole files by file digest, tree nodes by node digest.

Layout under the cache root:  files/ab/<30 hex>   trees/ab/<30 hex>   tmp/   projects/
Every object is written under a temp name and renamed into place, so a crash (kill -9) never
leaves a partial object under a final name: downloads and the native writers use a temp name
in the object's own folder (SHARD_TMP_MARK, not hex, so never taken for an object), the rest
tmp/; gc sweeps leftovers of both. projects/ lists the projects that share the cache (a
cache.dir), so that gc keeps what any of them uses.  Objects are read-only (0444):
with hardlink or symlink checkout the workspace file *is* the cache object, and a write to it
must fail rather than corrupt every version that shares those bytes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from fastreg import tmpnames
from fastreg.chunking import WHOLE_FILE_LIMIT, default_chunker, file_digest, file_matches
from fastreg.errors import (
    NO_SPACE,
    ChangedWhileReadingError,
    FileSystemError,
    IntegrityError,
    MissingDataError,
    no_space,
)
from fastreg.objects.digest import CURRENT, SHA256, digest_of, matches
from fastreg.repo.statcache import settle

#: Temp files that checkout writes beside their final name; a crash can leave one behind, so
#: add/status skip them and checkout deletes them.
WORKSPACE_TMP_MARK = ".fastreg-tmp-"


def is_workspace_tmp(name: str) -> bool:
    return name.startswith(".") and WORKSPACE_TMP_MARK in name


def workspace_tmp(dest: Path) -> Path:
    """The temp name a file is written under before it is renamed to dest."""
    return tmpnames.beside(dest, f"{WORKSPACE_TMP_MARK}{_TOKEN}-{next(_COUNTER)}")


#: Temp files written in an object's own folder (see Cache.tmp_path); not hex, so never an object.
SHARD_TMP_MARK = ".tmp-"
_FALLBACK_ERRNOS = (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EPERM, errno.EMLINK)
_TOKEN = os.urandom(6).hex()  # per process: temp names never collide, even in a shared cache
_COUNTER = itertools.count()
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)
_READ_BLOCK = 1 << 20


def _fanout(root: Path, digest: bytes) -> Path:
    h = digest.hex()
    return root / h[:2] / h[2:]


class Cache:
    """Content-addressed local object store.  Safe to share between projects and threads."""

    def __init__(self, root: Path, link_types: tuple[str, ...]) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.trees_dir = root / "trees"
        self.tmp_dir = root / "tmp"
        self._files_str = str(self.files_dir)
        self.link_types = link_types
        self._failed: set[str] = set()  # link types that proved unsupported here
        self._lock = threading.Lock()
        self._reflink_ok: bool | None = None
        self._shards: set[Path] = set()  # object folders known to exist
        # Objects this process wrote after checking their bytes (a fetch): a checkout right after
        # copies them without hashing them again (they are the very files just checked).
        self._fresh: set[bytes] = set()

    def ensure(self) -> None:
        for d in (self.files_dir, self.trees_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    def removals(self) -> bytes:
        """A token that changes whenever fastreg removes objects from this cache (gc, `check
        --cache --repair`): a stat cache written under another token no longer vouches that the
        objects of the folders it records are here."""
        try:
            return (self.root / "removed").read_bytes()
        except FileNotFoundError:
            return b""

    def note_removal(self) -> None:
        """Called before objects are removed (see removals)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"removed.{os.urandom(4).hex()}.tmp"
        tmp.write_bytes(os.urandom(8).hex().encode())
        os.replace(tmp, self.root / "removed")

    def copies(self) -> bool:
        """True when the first working cache.type is a plain copy (so the add pipeline can let
        the native core write the cache copy from the buffer it hashed)."""
        return self._first_working() == "copy"

    def _first_working(self) -> str | None:
        for kind in self.link_types:
            if kind in self._failed:
                continue
            if kind == "reflink" and not self._reflink_works():
                continue
            return kind
        return None

    def _reflink_works(self) -> bool:
        if self._reflink_ok is not None:
            return self._reflink_ok
        self._reflink_ok = False
        a, b = self._tmp(), self._tmp()
        try:
            a.write_bytes(b"probe")
            self._reflink(a, b)
            self._reflink_ok = True
            return True
        except OSError:
            with self._lock:
                self._failed.add("reflink")
            return False
        finally:
            for p in (a, b):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)

    def tmp_path(self, digest: bytes | None = None) -> Path:
        """A fresh temp name. With the digest of the object it will become, the name is in the
        object's own folder (`ab/.tmp-...`): the rename into place then stays inside one
        directory, and parallel writers spread over 256 folders instead of all creating files
        in tmp/ (one directory lock) and renaming across directories (those two locks would be a
        third of a 10k-file pull's kernel time). gc sweeps leftovers of both kinds."""
        if digest is None:
            return self._tmp()
        shard = self.file_path(digest).parent
        if shard not in self._shards:
            shard.mkdir(parents=True, exist_ok=True)
            self._shards.add(shard)
        return shard / f"{SHARD_TMP_MARK}{_TOKEN}-{next(_COUNTER)}"

    def leftover_tmps(self) -> list[str]:
        """Temp files a crashed writer may have left: everything in tmp/, and `.tmp-` names in
        the object folders."""
        out = [e.path for e in os.scandir(self.tmp_dir)] if self.tmp_dir.exists() else []
        if self.files_dir.exists():
            for sub in os.scandir(self.files_dir):
                if sub.is_dir() and len(sub.name) == 2:
                    out += [e.path for e in os.scandir(sub.path) if e.name.startswith(SHARD_TMP_MARK)]
        return out

    def adopt(self, tmp: str | Path, digest: bytes) -> None:
        """Move a finished, verified temp file into place as the object for digest (or drop it
        when the object exists already: the existing one may be hardlinked into workspaces)."""
        final = self.file_path(digest)
        if final.exists():
            os.unlink(tmp)
        else:
            self._publish(Path(tmp), final)

    def fetched(self, digests: Iterable[bytes]) -> None:
        """Note objects this process just stored after verifying their bytes (a fetch)."""
        self._fresh.update(digests)

    # -- paths -------------------------------------------------------------------------------
    def put_bytes(self, data: bytes, digest: bytes | None = None) -> bytes:
        """Store a file held in memory (verified against `digest`, of either format, when given;
        else named in format 2); its digest."""
        if digest is None:
            got = default_chunker().digest_buffer(data)[0]
        elif file_matches(data, digest):
            got = digest
        else:
            raise IntegrityError(f"content for cache object {digest.hex()} does not match its digest; not stored")
        if not self.has_file(got):
            tmp = self.tmp_path(got)
            tmp.write_bytes(data)
            self.adopt(tmp, got)
        return got

    def file_path(self, digest: bytes) -> Path:
        return _fanout(self.files_dir, digest)

    def file_path_str(self, digest: bytes) -> str:
        h = digest.hex()
        return f"{self._files_str}/{h[:2]}/{h[2:]}"

    def tree_path(self, digest: bytes) -> Path:
        return _fanout(self.trees_dir, digest)

    def has_file(self, digest: bytes) -> bool:
        return os.path.exists(self.file_path_str(digest))

    def _tmp(self) -> Path:
        return self.tmp_dir / f"{_TOKEN}-{next(_COUNTER)}"

    def _publish(self, tmp: Path, final: Path) -> None:
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)

    # -- trees -------------------------------------------------------------------------------
    def put_tree(self, data: bytes, digest_size: int = CURRENT) -> bytes:
        digest = digest_of(data, digest_size)
        final = self.tree_path(digest)
        if not final.exists():
            tmp = self._tmp()
            tmp.write_bytes(data)
            os.chmod(tmp, 0o444)
            self._publish(tmp, final)
        return digest

    def get_tree(self, digest: bytes) -> bytes:
        try:
            data = self.tree_path(digest).read_bytes()
        except FileNotFoundError:
            raise MissingDataError(
                f"tree {digest.hex()} is not in the cache at {self.root}; run `fastreg pull` to fetch it"
            ) from None
        if not matches(data, digest):
            raise IntegrityError(
                f"cache object {self.tree_path(digest)} is corrupt (content does not match its digest); "
                "delete it and run `fastreg add` or `fastreg pull` again"
            )
        return data

    # -- files -------------------------------------------------------------------------------
    def store_file(self, src: str, digest: bytes, st: tuple[int, int, int]) -> str | None:
        """Put the workspace file src (already hashed to digest; st = (ino, size, mtime_ns)
        when it was read) into the cache.

        Returns the link type now joining workspace and cache ("copy" and "reflink" leave the
        workspace file alone; "hardlink"/"symlink" replace it by a link to the cache object), or
        None when the object was already cached and the workspace was left as it is.
        Raises FastregError if src changed since it was hashed.
        """
        final = self.file_path(digest)
        if self._first_working() == "hardlink":
            # Fast path, 3 syscalls: link straight to the final name (atomic: it is the same
            # inode, never a partial file), check the inode is still what was hashed, protect it.
            try:
                try:
                    os.link(src, final)
                except FileNotFoundError:
                    if not os.path.exists(src):
                        raise
                    final.parent.mkdir(parents=True, exist_ok=True)  # fan-out folders appear on first use
                    os.link(src, final)
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS:
                    raise FileSystemError(f"cannot store {src} in the cache: {exc.strerror}") from None
                with self._lock:
                    self._failed.add("hardlink")
            else:
                after = os.lstat(final)
                if (after.st_ino, after.st_size, after.st_mtime_ns) != st:
                    os.unlink(final)
                    raise ChangedWhileReadingError(f"{src} changed while it was being added; run the command again")
                os.chmod(final, 0o444)
                return "hardlink"
        if final.exists():
            kind = self._first_working()
            if kind in ("hardlink", "symlink") and not self._same_inode(src, final):
                return self.place(digest, src, exec_bit=False, verify=False)
            return None
        tmp = self._tmp()

        def attempt(kind: str) -> None:
            if kind == "hardlink":
                os.link(src, tmp)
            elif kind == "symlink":
                os.link(src, tmp) if self._same_fs(src) else self._copy(src, tmp)
            elif kind == "reflink":
                self._reflink(src, tmp)
            else:
                self._copy(src, tmp)

        used = self._first_that_works(attempt, tmp, f"cannot store {src} in the cache", "the cache")
        if used is None:
            raise FileSystemError(
                f"cannot store {src} in the cache {self.root}: none of cache.type "
                f"{','.join(self.link_types)} works here; add copy to cache.type"
            )
        after = os.stat(tmp)
        if used in ("copy", "reflink"):
            after = os.stat(src)
        if (after.st_size, after.st_mtime_ns) != (st[1], st[2]):
            os.unlink(tmp)
            raise ChangedWhileReadingError(f"{src} changed while it was being added; run the command again")
        os.chmod(tmp, 0o444)
        self._publish(tmp, final)
        if used == "symlink":
            return self.place(digest, src, exec_bit=False, verify=False)
        return used

    def hardlinks(self) -> bool:
        return self._first_working() == "hardlink"

    def store_hardlinked(self, srcs: list[str], digests: list[bytes], keys: list[tuple[int, int, int]]) -> None:
        """store_file for a batch when cache.type starts with hardlink: one native pass links,
        checks and protects every file; the few that need more (a fan-out folder to create, an
        object that exists already, a filesystem without hardlinks) go through store_file."""
        from fastreg._files import link_files

        errs = link_files(srcs, [self.file_path_str(d) for d in digests], keys)
        for src, digest, key, err in zip(srcs, digests, keys, errs, strict=True):
            if err == 0:
                continue
            # ESTALE: changed since hashing, or a symlink to a file (link(2) links the symlink
            # itself); store_file links the target and raises if the content really changed.
            if err in (errno.EEXIST, errno.ENOENT, errno.ESTALE) or err in _FALLBACK_ERRNOS:
                self.store_file(src, digest, key)
                continue
            raise FileSystemError(f"cannot store {src} in the cache: {os.strerror(err)}")

    def _same_inode(self, a: str, b: Path) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    def _same_fs(self, src: str) -> bool:
        return os.stat(src).st_dev == os.stat(self.tmp_dir).st_dev

    @staticmethod
    def _copy(src: str | Path, dst: Path) -> None:
        # copy_file_range stays in the kernel (and shares extents on XFS/btrfs).
        with open(src, "rb") as fi, open(dst, "xb") as fo:
            remaining = os.fstat(fi.fileno()).st_size
            while remaining > 0:
                try:
                    n = os.copy_file_range(fi.fileno(), fo.fileno(), min(remaining, 1 << 30))
                except OSError as exc:  # across filesystems on older kernels, or not supported
                    if exc.errno not in (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                    break
                if n == 0:
                    break
                remaining -= n
            while block := fi.read(_READ_BLOCK):  # file grew, or copy_file_range unsupported
                fo.write(block)

    @staticmethod
    def _reflink(src: str | Path, dst: Path) -> None:
        with open(src, "rb") as fi, open(dst, "xb") as fo:
            fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())

    def place(self, digest: bytes, dest: str | Path, exec_bit: bool, verify: bool = True,
              settled: list[tuple[int, int, int]] | None = None) -> str:
        """Materialize the cached object at dest (temp name + rename), by the first link type
        that works.  With verify, the object is hashed first and an IntegrityError raised (and
        nothing placed) if it no longer matches its digest.  With `settled`, a copy or reflink
        is settled (statcache.settle) before the rename and its stat key appended there."""
        obj = self.file_path(digest)
        if not obj.exists():
            raise MissingDataError(f"object {digest.hex()} for {dest} is not in the cache; run `fastreg pull`")
        if verify and file_digest(obj, len(digest)) != digest:
            raise IntegrityError(
                f"cache object {obj} for {dest} is corrupt (content does not match its digest); "
                "it was not checked out: delete it and run `fastreg pull` or `fastreg add` again"
            )
        dest = Path(dest)
        tmp = workspace_tmp(dest)

        def attempt(kind: str) -> None:
            if kind == "hardlink":
                os.link(obj, tmp)
            elif kind == "symlink":
                os.symlink(obj, tmp)
            else:
                self._reflink(obj, tmp) if kind == "reflink" else self._copy(obj, tmp)
                os.chmod(tmp, (0o755 if exec_bit else 0o644) & ~_umask())
                if settled is not None:
                    settled.clear()
                    key = settle(tmp)
                    if key is not None:
                        settled.append(key)
            os.replace(tmp, dest)

        used = self._first_that_works(attempt, tmp, f"cannot write {dest}", "the workspace")
        if used is None:
            raise FileSystemError(f"cannot check out {dest}: none of cache.type {','.join(self.link_types)} works")
        return used

    def copy_verified(self, items: list[tuple[Path, bytes, bool]],
                      names: list[Path] | None = None) -> list[IntegrityError | None]:
        """Copy cache objects to new files (dest, digest, executable): each object is read,
        written and hashed in one native pass (no cut-point scan; a format-2 file of several
        chunks is then digested from its copy), the digest that of the bytes written. A corrupt
        object is reported (and its copy removed), never left written; raises OSError (e.g. a
        missing object) for the caller to fall back to place(). names: what each dest will be
        called once it is renamed into place, for messages (default: dest)."""
        from fastreg._files import copy_files

        results: list[bytes] = [b""] * len(items)
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, (_, d, _) in enumerate(items):
            groups.setdefault((len(d), len(d) == SHA256 and d in self._fresh), []).append(i)
        for (size, fresh), at in groups.items():
            # Each format's digest from the copy pass: format 1's XXH3 of the whole file, format
            # 2's SHA-256 of a file of one chunk; a larger format-2 file is digested from its
            # chunks, read back from the copy just written. An object this process fetched and
            # checked moments ago is copied without hashing it a second time.
            copied = copy_files([self.file_path_str(items[i][1]) for i in at], [items[i][0] for i in at],
                                [0o755 if items[i][2] else 0o644 for i in at], digest_size=size,
                                whole_limit=0 if fresh else WHOLE_FILE_LIMIT)
            for i, c in zip(at, copied, strict=True):
                results[i] = items[i][1] if fresh else c[1]
            big = [i for i, c in zip(at, copied, strict=True) if not fresh and not c[1] and c[0] > WHOLE_FILE_LIMIT]
            for i, h in zip(big, default_chunker(size).hash_files([items[i][0] for i in big]), strict=True):
                results[i] = h.digest
        out: list[IntegrityError | None] = []
        for i, ((dest, digest, _), got) in enumerate(zip(items, results, strict=True)):
            if got == digest:
                out.append(None)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            name = names[i] if names else dest
            out.append(IntegrityError(
                f"cache object {self.file_path(digest)} for {name} is corrupt (content does not match its "
                "digest); it was not written: delete it and run `fastreg pull` or `fastreg add` again"))
        return out

    def _first_that_works(self, attempt: Callable[[str], None], tmp: Path, what: str, space: str) -> str | None:
        """Run attempt(kind) for each cache.type in order; a kind the filesystem does not support
        is remembered as failed and skipped from then on. Returns the kind that worked."""
        for kind in self.link_types:
            if kind in self._failed:
                continue
            try:
                attempt(kind)
                return kind
            except OSError as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if exc.errno in NO_SPACE:  # not the link type's fault: the next one would fail too
                    raise no_space(tmp.parent, space) from None
                if exc.errno in _FALLBACK_ERRNOS:
                    with self._lock:
                        self._failed.add(kind)
                    continue
                raise FileSystemError(f"{what}: {exc.strerror}") from None
        return None

    # -- the projects that use this cache (a shared cache.dir) ---------------------------------
    # One small file per project under projects/, named by the XXH3-64 of its root and holding
    # that root: gc of a shared cache keeps what any of them refers to, and prunes entries whose
    # project is gone.
    @property
    def projects_dir(self) -> Path:
        return self.root / "projects"

    def register_project(self, root: Path) -> None:
        """Record that the project at root uses this cache (once; a stat when it is known)."""
        import xxhash

        entry = self.projects_dir / xxhash.xxh3_64_hexdigest(str(root).encode())
        if entry.exists():
            return
        self.projects_dir.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{_TOKEN}-{next(_COUNTER)}.tmp")
        tmp.write_text(str(root) + "\n")
        os.replace(tmp, entry)

    def projects(self) -> list[tuple[Path, Path]]:
        """(registry entry, project root) of every project registered here."""
        if not self.projects_dir.is_dir():
            return []
        out = []
        for entry in sorted(self.projects_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                out.append((entry, Path(entry.read_text().strip())))
        return out

    def iter_objects(self, kind: str) -> list[tuple[bytes, Path]]:
        base = self.files_dir if kind == "files" else self.trees_dir
        out: list[tuple[bytes, Path]] = []
        if not base.exists():
            return out
        for sub in os.scandir(base):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for obj in os.scandir(sub.path):
                try:
                    out.append((bytes.fromhex(sub.name + obj.name), Path(obj.path)))
                except ValueError:
                    continue
        return out


def _read_umask() -> int:
    """The process's umask, read without changing it (Linux shows it in /proc/self/status).
    Elsewhere it has to be set to be read; that happens once, while this module is imported
    (under the import lock), never in a pool thread where a racing call could leave it at 0."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK

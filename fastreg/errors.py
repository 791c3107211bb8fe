"""The one exception hierarchy.  Every error a user can cause is a FastregError whose message is
the whole story in one line (what failed, where, what to do); the CLI prints it as
``error: <message>`` and exits with ``exit_code``.  Library errors (OSError, msgpack, tomllib)
are translated into these where they enter fastreg."""

from __future__ import annotations

import errno
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """text with newlines and other control characters escaped (\\n, \\x1b, \\u2028), so an
    error built from a user's URL or a server's message stays one line on a terminal and cannot
    move its cursor or recolour it."""
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


class FastregError(Exception):
    """Base of all errors fastreg reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class StorageError(FastregError):
    """A request to a remote failed (unreachable, refused, kept failing after the retries);
    `retryable` says whether trying again may help (the retry wrapper asks only this)."""

    exit_code = 7

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ObjectNotFound(StorageError):
    """The key does not exist on the remote (data missing there: no storage failure)."""

    exit_code = 1


class ReadOnlyStore(StorageError):
    """A write (or a clean-up) asked of a read-only remote (HTTP, or one configured read_only)."""

    exit_code = 1


class DecodeError(FastregError):
    """Bytes that should be a fastreg structure (tree, segment, record, snapshot) are not."""


class MissingDataError(FastregError):
    """Data a command needs is neither in the local cache nor on the remote it reads."""


class MissingObjectError(MissingDataError, FileNotFoundError):
    """The remote lacks data a reader was asked for (Python code sees a FileNotFoundError)."""


class FileSystemError(FastregError):
    """The local filesystem refused an operation (list, stat, read, write) on a path."""


class ChangedWhileReadingError(FastregError):
    """A file changed while it was being added: what was read may not be what is there now."""


class ConflictError(FastregError):
    """The command would lose local changes that exist nowhere else (`--force` discards them)."""

    exit_code = 8


class LockedError(FastregError):
    """Another fastreg command holds the project's lock."""

    exit_code = 6


class GitError(FastregError):
    """git is missing, or a git command failed."""


class RegistryError(FastregError):
    """A registry cannot be used as asked: no such revision, no commits, a broken config or tree."""


class MissingRevisionError(RegistryError, FileNotFoundError):
    """The registry has no such revision (a FileNotFoundError too, for Python readers)."""


class NoRemoteError(RegistryError):
    """The registry commits no default remote: its Git files and tracked paths can be listed, its
    data and trees cannot be read."""


class RemoteFormatError(FastregError):
    """The remote was written by a newer fastreg (or is not a fastreg remote)."""


class GcRefusedError(FastregError):
    """gc stopped before deleting anything: it could not tell what must be kept."""


class DependencyError(FastregError):
    """An optional dependency a flag needs is not installed."""


class InvariantError(FastregError):
    """Something fastreg guarantees did not hold (a bug to report)."""


class UsageError(FastregError):
    """The command line or its arguments are wrong."""

    exit_code = 2


class NotAProjectError(FastregError):
    """No .fastreg/ directory here or above (or no Git work tree for init)."""


class PathError(FastregError):
    """A target path is unusable: outside the project, inside .fastreg/, missing, overlapping."""


class MissingPathError(PathError, FileNotFoundError):
    """A path is not in the registry (or project) at that revision; a FileNotFoundError too, so
    Python code that reads registry files catches it as it would for a local file."""


class DirectoryPathError(PathError, IsADirectoryError):
    """A directory where a file was asked for (opening a tracked directory); an IsADirectoryError too."""


class NoSpaceError(FileSystemError):
    """A disk (or quota) ran full while fastreg wrote: says where, and what helps."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space(path: object, what: str) -> NoSpaceError:
    """The error for a write that ran out of space at `path`; `what` says whose disk it is ("the
    cache", "the workspace"). Callers remove their temp files before raising it."""
    hint = (" or move the cache to a larger disk (`dir` under [cache] in .fastreg/config.local)"
            if "cache" in what else "")
    return NoSpaceError(f"no space left on the device of {what} while writing {path}; nothing half-written was "
                        f"left: free space and run the command again{hint}")


class MetafileError(FastregError):
    """A .fastreg metafile cannot be read: corrupt, hand-edited or from a newer fastreg."""


class UnmergedError(MetafileError):
    """A metafile in the middle of a Git merge: conflict markers, or conflicts a merge left."""

    exit_code = 5


class ConfigError(FastregError):
    """.fastreg/config (or config.local) is invalid."""


class IncompletePushError(FastregError):
    """A push uploaded what it could and left targets out whose data is neither in the local
    cache nor on the remote (exit 3, as damage found by `check`)."""

    exit_code = 3


class IntegrityError(FastregError):
    """Bytes do not match their digest: a corrupt cache or remote object."""

    exit_code = 3


class DamagedChunksError(IntegrityError):
    """Chunks read from the remote that are not what their digests name (`chunks`), for a caller
    that knows which files they belong to and names those."""

    def __init__(self, message: str, chunks: frozenset[bytes]) -> None:
        super().__init__(message)
        self.chunks = chunks

    def naming(self, paths: list[str]) -> IntegrityError:
        """The same error, led by the paths of the files the damaged chunks belong to."""
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        return IntegrityError(f"{shown}: not read, the remote's bytes do not match their digest ({self.message})")

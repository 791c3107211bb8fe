"""The one exception hierarchy.  Every error a user can cause is a FastregError whose message is
the whole story in one line (what failed, where, what to do); the CLI prints it as
``error: <message>`` and exits with ``exit_code``.  Library errors (OSError, msgpack, tomllib)
are translated into these where they enter fastreg."""

from __future__ import annotations

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


class MetafileError(FastregError):
    """A .fastreg metafile cannot be read: corrupt, hand-edited or from a newer fastreg."""


class ConfigError(FastregError):
    """.fastreg/config (or config.local) is invalid."""


class IntegrityError(FastregError):
    """Bytes do not match their digest: a corrupt cache or remote object."""

    exit_code = 3

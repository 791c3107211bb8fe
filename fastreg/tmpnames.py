"""Temporary names beside a final one. Data is written under a temp name in the destination's
own folder and renamed into place, so a crash never leaves a partial file under a final name.
The temp name carries the final name (a person who finds a leftover knows what it was) cut to
fit the filesystem's limit on one name: a file whose own name is 250 bytes long must still be
writable."""

from __future__ import annotations

from pathlib import Path

NAME_MAX = 255  # bytes in one path component on Linux filesystems (ext4, XFS, btrfs, tmpfs)


def beside(dest: Path, tag: str) -> Path:
    """dest's folder / ('.' + dest's name, cut at a character boundary as needed, + tag)."""
    room = NAME_MAX - 1 - len(tag.encode())
    name = dest.name
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > room:
        name = encoded[:room].decode("utf-8", "ignore")  # drop a character cut in half
    return dest.with_name(f".{name}{tag}")

"""The md5 DVC records for a file's bytes.

DVC 3 (`hash: md5`) records the md5 of the bytes. DVC 2 (no `hash:`, "md5-dos2unix") hashed a
text file as if its CRLF line ends were LF: the file is read in 1 MiB blocks, a block's CRLFs
become LF before it is hashed when the file is text, and a file is text when its first 512
bytes hold no NUL and at most 30% bytes outside printable ASCII and \\n\\r\\t\\f\\b. DVC 2 decided
once per file (its first block); dvc-data, which DVC 3 uses to read legacy data, decides for
each block by the block's own first 512 bytes. The two agree on every file up to 1 MiB and on
most others; a legacy md5 is accepted when it matches either rule.
"""

from __future__ import annotations

import hashlib
from typing import Any

BLOCK = 1 << 20
_TEXT = bytes(range(32, 127)) + b"\n\r\t\f\b"


def is_text(block: bytes | memoryview) -> bool:
    head = bytes(block[:512])
    if not head:
        return True
    if b"\x00" in head:
        return False
    return len(head.translate(None, _TEXT)) / len(head) <= 0.30


class Md5Check:
    """An md5 computed as bytes arrive, under DVC's rule for the entry (see the module doc)."""

    def __init__(self, legacy: bool) -> None:
        self.legacy = legacy
        self._whole: Any = hashlib.md5()  # the bytes (DVC 3), or DVC 2's one decision per file
        self._blocks: Any = None  # dvc-data's per-block rule, once a block decides otherwise
        self._first: bool | None = None
        self._pending = b""

    def update(self, data: bytes | memoryview) -> None:
        if not self.legacy:
            self._whole.update(data)
            return
        buf = self._pending + bytes(data) if self._pending else bytes(data)  # the rules see 1 MiB blocks
        whole = len(buf) - len(buf) % BLOCK
        for i in range(0, whole, BLOCK):
            self._block(buf[i : i + BLOCK])
        self._pending = buf[whole:]

    def _block(self, block: bytes) -> None:
        text = is_text(block)
        if self._first is None:
            self._first = text
        if self._blocks is None and text != self._first:
            self._blocks = self._whole.copy()
        self._whole.update(block.replace(b"\r\n", b"\n") if self._first else block)
        if self._blocks is not None:
            self._blocks.update(block.replace(b"\r\n", b"\n") if text else block)

    def hexdigests(self) -> set[str]:
        """The md5s the bytes so far have under the entry's rule (two for a legacy file whose
        blocks disagree about being text)."""
        if self.legacy and (self._pending or self._first is None):
            self._block(self._pending)
            self._pending = b""
        out = {self._whole.hexdigest()}
        if self._blocks is not None:
            out.add(self._blocks.hexdigest())
        return out

    def matches(self, md5: str) -> bool:
        return md5 in self.hexdigests()


def md5_of(data: bytes | memoryview, legacy: bool) -> set[str]:
    check = Md5Check(legacy)
    check.update(data)
    return check.hexdigests()

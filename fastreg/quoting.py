"""Paths in line-oriented output, quoted as Git quotes them (`core.quotePath=false`): a path
with a control character, a double quote or a backslash is printed in double quotes with C
escapes (`"a\\nb.jpg"`), so every entry stays on one line; any other path is printed as it is
(UTF-8 names included). Bytes that are not UTF-8 (kept by surrogateescape) are octal escapes.
Commands take the quoted form back as a path argument. JSON output carries paths unquoted."""

from __future__ import annotations

import re

_NAMED = {"\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r", '"': '"', "\\": "\\"}
_UNNAMED = {v: k for k, v in _NAMED.items()}


#: Every character a quoted path escapes: C0 controls, DEL, '"', backslash, and the lone
#: surrogates that stand for bytes that are not UTF-8. One regex search per path: `list -R` of
#: 100k paths must not walk each one character by character in Python.
_SPECIAL = re.compile('[\x00-\x1f\x7f"\\\\\udc80-\udcff]')


def quote(path: str) -> str:
    if _SPECIAL.search(path) is None:
        return path
    out = []
    for ch in path:
        o = ord(ch)
        if ch in _NAMED:
            out.append("\\" + _NAMED[ch])
        elif 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\{o - 0xDC00:03o}")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\{o:03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def unquote(text: str) -> str:
    """The path a quoted argument names; anything not in double quotes is taken as it is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    body = text[1:-1]
    raw = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 == len(body):
            raw += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _UNNAMED:
            raw += _UNNAMED[nxt].encode()
            i += 2
        elif len(octal := body[i + 1 : i + 4]) == 3 and all(c in "01234567" for c in octal):
            raw.append(int(octal, 8) & 0xFF)
            i += 4
        else:  # not an escape Git writes: keep it as it stands
            raw += b"\\"
            i += 1
    return raw.decode("utf-8", "surrogateescape")

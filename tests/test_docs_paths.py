"""Every file path of the repository that the docs name (fastreg/..., tests/..., bench/...,
scripts/..., docs/...) exists, so a reader who follows one finds it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"(?<![\w./-])((?:fastreg|tests|bench|scripts|docs)/[\w./-]*\w)")
SHORT = re.compile(r"`((?:[a-z_]+/)*[a-z_]+\.(?:py|pyx|pxd|md|sh))`")  # `repo/push.py`, from fastreg/


def _named(text: str) -> set[str]:
    return {m.group(1) for m in PATH.finditer(text)} | {m.group(1) for m in SHORT.finditer(text)}


def _exists(name: str) -> bool:
    name = name.rstrip(".")
    if name.startswith("bench/work"):
        return True  # made by the benchmarks when they run
    if "/" not in name:  # a module named by its file in a folder's own paragraph: `push.py`
        return any((ROOT / "fastreg").rglob(name))
    candidates = [ROOT / name, ROOT / "fastreg" / name, ROOT / "docs" / name]
    return any(c.exists() for c in candidates)


def test_every_path_the_docs_name_exists() -> None:
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]:
        for name in sorted(_named(doc.read_text())):
            if not _exists(name):
                missing.append(f"{doc.relative_to(ROOT)}: {name}")
    assert not missing, "\n".join(missing)

"""Project configuration: .fastreg/config (committed) overlaid by .fastreg/config.local (not).

TOML, read with tomllib and written with tomli-w.  Only the cache section is interpreted here;
other sections (remotes) are kept as they are for the layers that own them."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from fastreg.errors import ConfigError

LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
DEFAULT_LINK_TYPES = ("reflink", "copy")


@dataclass(frozen=True, slots=True)
class CacheConfig:
    link_types: tuple[str, ...]
    directory: Path | None  # shared cache directory; None: .fastreg/cache


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix or delete the file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def write_toml(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(doc))
    os.replace(tmp, path)


def overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base with over's values on top, table by table: a table in both is merged key by key at
    every depth, so `[remote.store] gc_grace = 0` in config.local overrides that one option of
    the committed remote and keeps its url and the rest."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = overlay(out[key], value)
        else:
            out[key] = value
    return out


def merged(fastreg_dir: Path) -> dict[str, Any]:
    return overlay(read_toml(fastreg_dir / "config"), read_toml(fastreg_dir / "config.local"))


def cache_config(doc: dict[str, Any], fastreg_dir: Path) -> CacheConfig:
    section = doc.get("cache", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{fastreg_dir / 'config'}: [cache] must be a table")
    raw = section.get("type", ",".join(DEFAULT_LINK_TYPES))
    types = tuple(t.strip() for t in raw.split(",")) if isinstance(raw, str) else ()
    if not types or any(t not in LINK_TYPES for t in types):
        raise ConfigError(
            f"cache.type = {raw!r} is invalid: use a comma-separated list of {', '.join(LINK_TYPES)}"
        )
    directory = section.get("dir")
    if directory is not None and not isinstance(directory, str):
        raise ConfigError("cache.dir must be a path string")
    path = None
    if directory:
        path = Path(os.path.expanduser(directory))
        if not path.is_absolute():
            path = (fastreg_dir / path).resolve()
    return CacheConfig(types, path)

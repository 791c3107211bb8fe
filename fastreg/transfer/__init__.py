"""asyncio pipelines that run transfer plans against a Store: push (pack + upload) and fetch
(ranged download + verify + place). Entered through run(); nothing above this layer is async."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)

"""Run a synchronous handler body in a worker thread.

The app's database layer is synchronous (one code path for web, jobs and CLI), so handlers are plain
functions run off the event loop. Litestar's own ``sync_to_thread=True`` wraps a handler twice when
two handlers share a path (GET and POST of one form), so handlers use this decorator instead: it
keeps the signature and annotations Litestar reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["in_thread"]

T = TypeVar("T")


def in_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return wrapper

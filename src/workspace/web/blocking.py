"""Run a synchronous handler body in a worker thread.

The app's database layer is synchronous (one code path for web, jobs and CLI), so handlers are plain
functions run off the event loop. Litestar's own ``sync_to_thread=True`` wraps a handler twice when
two handlers share a path (GET and POST of one form), so handlers use this decorator instead: it
keeps the signature and annotations Litestar reads.

On ``ONE_THREAD`` routes (the hot API, see ``workspace.web.uow``) the guard leaves its blocking part
(credentials, tenant, permissions) in the request's state; the wrapper runs it in the same worker
thread, first, then the handler, then the commit: one thread hop per request instead of three.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from workspace.web.uow import commit_if_done

__all__ = ["in_thread", "DEFERRED_GUARD", "runs_deferred_guard"]

T = TypeVar("T")
DEFERRED_GUARD = "ws_deferred_guard"  # scope state: the guard's blocking part, to run in the handler's thread
_RUNS_GUARD = "__ws_runs_deferred_guard__"


def in_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    takes_request = "request" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        if takes_request:
            return await anyio.to_thread.run_sync(_guarded, kwargs["request"], call)
        return await anyio.to_thread.run_sync(call)

    setattr(wrapper, _RUNS_GUARD, takes_request)
    return wrapper


def runs_deferred_guard(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (a route handler's function) runs a guard's deferred part before its body."""
    return getattr(fn, _RUNS_GUARD, False) is True


def _guarded(request: Any, call: Callable[[], T]) -> T:
    deferred = request.scope.get("state", {}).pop(DEFERRED_GUARD, None)
    if deferred is not None:
        deferred()
    result = call()
    commit_if_done(request, result)
    return result

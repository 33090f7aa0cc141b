"""One database session per request, committed before the response starts (2xx/3xx) or rolled back.

The session is created lazily (``request_session``) and finished by the ``before_send`` hook on
``http.response.start``, so a client never sees success for a change that did not commit.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.response import Response
from litestar.types import Message, Scope
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, set_actor
from workspace.db.engine import readonly_engine
from workspace.runtime import Runtime

__all__ = ["request_session", "finish_session", "runtime_of", "request_actor", "commit_if_done", "STATE_DB",
           "DEFERRED_TX", "ONE_THREAD"]

log = logging.getLogger(__name__)
STATE_DB = "ws_db"
DEFERRED_TX = "deferred_tx"  # route opt: on SQLite, begin the request's transaction deferred
# Route opt for the hot API: the guard's blocking part, the handler and the commit run in one worker
# thread instead of three. The handler must be ``in_thread`` and take ``request`` (the guard checks),
# and must return plain data (never ORM objects, a template or a stream): its transaction commits as
# soon as it returns, before the response is encoded.
ONE_THREAD = "one_thread"


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    return connection.app.state["runtime"]


def request_actor(connection: ASGIConnection[Any, Any, Any, Any], *, type_: str = "anonymous",
                  id_: str | None = None, label: str = "") -> Actor:
    return Actor(
        type=type_,
        id=id_,
        label=label,
        ip=connection.client.host if connection.client else None,
        user_agent=(connection.headers.get("user-agent") or "")[:500] or None,
        request_id=connection.scope.get("state", {}).get("request_id"),
    )


def is_api_path(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return str(connection.scope.get("path", "")).startswith("/api/")


def _reads_first(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    handler = connection.scope.get("route_handler")
    if handler is not None and handler.opt.get(DEFERRED_TX):
        return True
    return connection.scope.get("method") in ("GET", "HEAD") and not is_api_path(connection)


def request_session(connection: ASGIConnection[Any, Any, Any, Any]) -> Session:
    state = connection.scope.setdefault("state", {})
    session = state.get(STATE_DB)
    if session is None:
        runtime = runtime_of(connection)
        if runtime.settings.is_sqlite and _reads_first(connection):
            # Pages only read (and routes that opt in write little, late): on SQLite they begin a
            # deferred transaction, so a long write (a large import job holds the write lock for its
            # whole transaction) never keeps them waiting.
            session = runtime.session_factory(bind=readonly_engine(runtime.engine))
        else:
            session = runtime.session_factory()
        set_actor(session, request_actor(connection))
        state[STATE_DB] = session
    return session


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def commit_if_done(connection: ASGIConnection[Any, Any, Any, Any], result: Any) -> None:
    """In the handler's thread, right after it returned ``result``: commit now if the route is
    ``ONE_THREAD`` and its response is a success made from that plain data (a ``Response`` object is
    left to ``finish_session``, which sees its status)."""
    handler = connection.scope.get("route_handler")
    if handler is None or not handler.opt.get(ONE_THREAD) or isinstance(result, Response):
        return
    if (handler.status_code or 200) >= 400:
        return
    session = connection.scope.get("state", {}).pop(STATE_DB, None)
    if session is not None:
        _finish(session, True)


async def finish_session(message: Message, scope: Scope) -> None:
    """``before_send`` hook."""
    if message["type"] != "http.response.start":
        return
    state = scope.get("state", {})
    session = state.pop(STATE_DB, None)
    if session is None:
        return
    await anyio.to_thread.run_sync(_finish, session, message["status"] < 400)


async def close_leftover(scope: Scope) -> None:
    """``after_response`` safety net: a session whose response never started is rolled back."""
    session = scope.get("state", {}).pop(STATE_DB, None)
    if session is not None:
        await anyio.to_thread.run_sync(_finish, session, False)

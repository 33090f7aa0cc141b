"""One database session per request, committed before the response starts (2xx/3xx) or rolled back.

The session is created lazily (``request_session``) and finished by the ``before_send`` hook on
``http.response.start``, so a client never sees success for a change that did not commit.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.types import Message, Scope
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, set_actor
from workspace.runtime import Runtime

__all__ = ["request_session", "finish_session", "runtime_of", "request_actor", "STATE_DB"]

log = logging.getLogger(__name__)
STATE_DB = "ws_db"


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


def request_session(connection: ASGIConnection[Any, Any, Any, Any]) -> Session:
    state = connection.scope.setdefault("state", {})
    session = state.get(STATE_DB)
    if session is None:
        session = runtime_of(connection).session_factory()
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

"""Server-side sessions (Redis store in production, a file store in embedded mode) with id rotation.

Litestar's server-side backend keeps the cookie's id for the session's life; logging in must issue a
fresh id (session fixation), so a session marked with ``rotate_session()`` gets a new id and the old
one is deleted from the store.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

__all__ = ["RotatingSessionConfig", "rotate_session"]

_ROTATE = "_rotate"


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any], data: dict[str, Any]) -> None:
    """Replace the session's content and issue a new session id with the response."""
    connection.scope["session"] = {**data, _ROTATE: True}


class RotatingSessionBackend(ServerSideSessionBackend):
    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection
    ) -> None:
        if isinstance(scope_session, dict) and scope_session.pop(_ROTATE, False):
            store = self.config.get_store_from_app(connection.scope["app"])
            old_id = connection.cookies.get(self.config.key)
            if old_id:
                await self.delete(old_id, store=store)
            new_id = self.generate_session_id()
            await self.set(session_id=new_id, data=self.serialize_data(scope_session, connection.scope), store=store)
            params = dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))
            MutableScopeHeaders.from_message(message).add(
                "Set-Cookie", Cookie(value=new_id, key=self.config.key, **params).to_header(header="")
            )
            return
        if scope_session is not Empty and not scope_session and not connection.cookies.get(self.config.key):
            return  # nothing to keep and no cookie yet: don't mint sessions for anonymous visitors
        await super().store_in_message(scope_session, message, connection)


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend

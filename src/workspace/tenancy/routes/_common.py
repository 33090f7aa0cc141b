"""Helpers shared by the tenancy route modules."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, record
from workspace.tenancy import repositories as repo
from workspace.tenancy.permissions import BUILTIN_ROLES
from workspace.web.uow import request_session


Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def db_of(request: Request[Any, Any, Any]) -> Session:
    return request_session(request)


def safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def record_for_user_tenants(db: Session, user_id: int, action: str, actor: Actor) -> None:
    """Sign-in events belong to every tenant the user is an active member of."""
    for tenant, _membership in repo.active_memberships_of_user(db, user_id):
        record(db, action, tenant_id=tenant.id, object_type="user", object_id=user_id,
               object_label=actor.label, actor=actor)


def role_name(db: Session, key: str) -> str:
    if key in BUILTIN_ROLES:
        return BUILTIN_ROLES[key].name
    role = repo.custom_role(db, key)
    return role.name if role else key

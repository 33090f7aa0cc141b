"""Queries. Tenant criteria are added by the scoping hook; nothing here writes ``tenant_id ==``."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session

from workspace.tenancy.errors import NotFound
from workspace.tenancy.models import (
    MEMBER_ACTIVE,
    ApiToken,
    Membership,
    ProjectGrant,
    Role,
    Team,
    TeamMember,
    Tenant,
    User,
)
from workspace.tenancy.scoping import already_loaded, unscoped

__all__ = [
    "fetch",
    "user_by_email",
    "tenant_by_slug",
    "membership_of",
    "ApiCaller",
    "api_caller",
    "active_memberships_of_user",
    "count_active_owners",
    "custom_role",
    "team_members",
    "members",
    "visible_tokens",
    "token_by_hash",
    "teams",
    "granted_project_ids",
]

M = TypeVar("M")


@functools.cache
def _by_id(model: type[Any]) -> Select[Any]:
    """One statement per model, built once (SQLAlchemy memoizes its cache key on the object)."""
    return select(model).where(model.id == bindparam("object_id"))


def fetch(session: Session, model: type[M], object_id: int, *, what: str | None = None) -> M:
    """Load one row by id from user input: within the bound tenant, or 404 (never ``session.get``).
    A row this request already loaded is not read again."""
    obj = already_loaded(session, model, object_id)
    if obj is not None:
        return obj
    obj = session.scalars(_by_id(model), {"object_id": object_id}).unique().first()
    if obj is None:
        raise NotFound(f"{what or model.__name__} not found")
    return obj


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def tenant_by_slug(session: Session, slug: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.slug == slug)).first()


class ApiCaller(NamedTuple):
    """Whom an API credential speaks for, read as plain values in one query before any tenant is bound:
    the token (its columns keep their names, so token checks read it like an :class:`ApiToken`), its
    user, its tenant and the user's membership there (``membership_id`` None when they have none)."""

    id: int
    prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: int
    tenant_id: int
    user_email: str
    user_name: str
    user_active: bool
    tenant_slug: str
    tenant_name: str
    policy_version: int
    membership_id: int | None
    role: str | None
    membership_status: str | None


def _api_caller_query(found: Any) -> Any:
    token, user, tenant, member = ApiToken.__table__.c, User.__table__.c, Tenant.__table__.c, Membership.__table__.c
    return (
        select(token.id, token.prefix, token.expires_at, token.revoked_at, token.last_used_at, token.user_id,
               token.tenant_id, user.email, user.name, user.is_active, tenant.slug, tenant.name,
               tenant.policy_version, member.id, member.role, member.status)
        .join(User.__table__, user.id == token.user_id)
        .join(Tenant.__table__, tenant.id == token.tenant_id)
        .outerjoin(Membership.__table__, (member.tenant_id == token.tenant_id) & (member.user_id == token.user_id))
        .where(found)
    )


# Built once, on the tables: every API request runs one of these, and a statement built per call (or
# an ORM one) costs more CPU than the query itself.
_CALLER_BY_HASH = _api_caller_query(ApiToken.__table__.c.token_hash == bindparam("token_hash"))
_CALLER_BY_ID = _api_caller_query(ApiToken.__table__.c.id == bindparam("token_id"))


def api_caller(session: Session, *, token_hash: str | None = None, token_id: int | None = None) -> ApiCaller | None:
    """The caller behind a legacy key (by its hash) or a personal token (by id), or None. Plain rows
    of a Core query: every API request starts here. Cross-tenant by nature (the credential names its
    tenant), so it runs on the connection, where the ORM's tenant hook does not apply."""
    if token_hash is not None:
        query, params = _CALLER_BY_HASH, {"token_hash": token_hash}
    else:
        query, params = _CALLER_BY_ID, {"token_id": token_id}
    row = session.connection().execute(query, params).first()
    return ApiCaller(*row) if row is not None else None


def membership_of(session: Session, user_id: int) -> Membership | None:
    return session.scalars(select(Membership).where(Membership.user_id == user_id)).unique().first()


def active_memberships_of_user(session: Session, user_id: int) -> list[tuple[Tenant, Membership]]:
    # Cross-tenant by nature: the tenants a user belongs to (switcher, login landing).
    with unscoped(session, "a user's own memberships across tenants"):
        rows = session.execute(
            select(Tenant, Membership)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Membership.user_id == user_id, Membership.status == MEMBER_ACTIVE)
            .order_by(Tenant.name)
        ).unique().all()
    return [(t, m) for t, m in rows]


def count_active_owners(session: Session) -> int:
    return session.scalar(
        select(func.count()).select_from(Membership).where(Membership.role == "owner", Membership.status == MEMBER_ACTIVE)
    ) or 0


def custom_role(session: Session, key: str) -> Role | None:
    return session.scalars(select(Role).where(Role.key == key)).first()


def members(session: Session) -> list[Membership]:
    """The tenant's members, by e-mail."""
    return list(session.scalars(select(Membership).join(Membership.user).order_by(User.email)).unique())


def visible_tokens(session: Session, user_id: int, *, all_members: bool) -> list[ApiToken]:
    """The member's own API tokens, or everyone's for those who manage tokens; newest first."""
    stmt = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if not all_members:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(session.scalars(stmt).unique())


def team_members(session: Session, team_id: int) -> list[TeamMember]:
    return list(session.scalars(select(TeamMember).where(TeamMember.team_id == team_id)).unique())


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    # The token itself names its tenant: look it up before a tenant is known.
    with unscoped(session, "an API key identifies its tenant"):
        return session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).unique().first()


def teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.name)))


def granted_project_ids(user_id: int) -> Select[tuple[int]]:
    """Ids of the projects granted to the user, directly or through one of their teams (a subquery).

    Every project role includes ``project:read``, so these are the projects a project-scoped member sees.
    """
    their_teams = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    return select(ProjectGrant.project_id).where(
        or_(ProjectGrant.user_id == user_id, ProjectGrant.team_id.in_(their_teams)))

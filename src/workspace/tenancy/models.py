"""Tenancy models: tenants, global users, memberships, teams, roles, grants, invitations, tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workspace.db.base import Audited, Base, TenantOwned, Timestamped

__all__ = [
    "Tenant",
    "User",
    "Membership",
    "Team",
    "TeamMember",
    "Role",
    "ProjectGrant",
    "Invitation",
    "ApiToken",
    "CasbinRule",
    "MEMBER_ACTIVE",
    "MEMBER_DEACTIVATED",
]

MEMBER_ACTIVE = "active"
MEMBER_DEACTIVATED = "deactivated"


class Tenant(Timestamped, Audited, Base):
    __tablename__ = "tenant"
    __audit_type__ = "tenant"
    __audit_exclude__ = frozenset({"policy_version"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Bumped in the same transaction as any role, membership or grant change: every process
    # compares it per request and reloads its casbin policy when it moved.
    policy_version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)


class User(Timestamped, Audited, Base):
    """A global identity; what it may do lives in its memberships."""

    __tablename__ = "user_account"
    __audit_type__ = "user"
    __audit_exclude__ = frozenset({"password_hash", "session_epoch"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Sessions carry the epoch they were created in; bumping it (password change) ends them all.
    session_epoch: Mapped[int] = mapped_column(Integer, default=1, nullable=False)


class Membership(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "membership"
    __audit_type__ = "membership"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(63), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=MEMBER_ACTIVE, nullable=False)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and set(changes) == {"status"}:
            return "reactivated" if changes["status"][1] == MEMBER_ACTIVE else "deactivated"
        if verb == "updated" and set(changes) == {"role"}:
            return "role_changed"
        return verb

    def audit_label(self) -> str:
        user = self.__dict__.get("user")  # only if loaded: no lazy load in the middle of a flush
        return user.email if user is not None else f"user #{self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.status == MEMBER_ACTIVE and self.user.is_active


class Team(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "team"
    __audit_type__ = "team"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)


class TeamMember(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "team_member"
    __audit_type__ = "team_member"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class Role(TenantOwned, Timestamped, Audited, Base):
    """A custom role: a named set of permissions ("resource:action") defined by one tenant."""

    __tablename__ = "custom_role"
    __audit_type__ = "role"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    permissions: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)


class ProjectGrant(TenantOwned, Timestamped, Audited, Base):
    """A user or a team holds a project-level role (annotator, reviewer or manager) on one project."""

    __tablename__ = "project_grant"
    __audit_type__ = "project_grant"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (team_id IS NULL)", name="one_subject"),
        UniqueConstraint("project_id", "user_id", "team_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(63), nullable=False)


class Invitation(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "invitation"
    __audit_type__ = "invitation"
    __audit_exclude__ = frozenset({"token_hash"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(63), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and "accepted_at" in changes:
            return "accepted"
        if verb == "updated" and "revoked_at" in changes:
            return "revoked"
        return verb


class ApiToken(TenantOwned, Timestamped, Audited, Base):
    """An API key of one member in one tenant. Only its SHA-256 is stored; it is shown once."""

    __tablename__ = "api_token"
    __audit_type__ = "api_token"
    __audit_exclude__ = frozenset({"token_hash", "last_used_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        return "revoked" if verb == "updated" and "revoked_at" in changes else verb


class CasbinRule(Base):
    """casbin's policy table, read by ``sqlalchemy_adapter`` and written inside our transactions."""

    __tablename__ = "casbin_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ptype: Mapped[str] = mapped_column(String(255))
    v0: Mapped[str | None] = mapped_column(String(255))
    v1: Mapped[str | None] = mapped_column(String(255))
    v2: Mapped[str | None] = mapped_column(String(255))
    v3: Mapped[str | None] = mapped_column(String(255))
    v4: Mapped[str | None] = mapped_column(String(255))
    v5: Mapped[str | None] = mapped_column(String(255))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)

    def __str__(self) -> str:
        values = [v for v in (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5) if v is not None]
        return ", ".join([self.ptype, *values])

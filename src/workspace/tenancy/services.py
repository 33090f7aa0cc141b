"""Tenancy use cases. Services flush, never commit; the request or command boundary commits.

Object rules live here: nobody grants or changes a role above their own permissions, the last owner
stays, invitations expire, deactivated members and revoked tokens stop working.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, set_actor
from workspace.lib.secrets import digest, new_secret
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy import repositories as repo
from workspace.tenancy.authz import policy
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Forbidden, Invalid, NotFound
from workspace.tenancy.identity import check_password_policy, hash_password, verify_password
from workspace.tenancy.models import (
    MEMBER_ACTIVE,
    MEMBER_DEACTIVATED,
    ApiToken,
    Invitation,
    Membership,
    ProjectGrant,
    Role,
    Team,
    TeamMember,
    Tenant,
    User,
)
from workspace.tenancy.permissions import BUILTIN_ROLES, CATALOGUE, PROJECT_ROLES, builtin_permissions
from workspace.tenancy.scoping import bind_tenant, unscoped

__all__ = [
    "create_tenant",
    "authenticate",
    "role_permissions",
    "role_choices",
    "invite_member",
    "accept_invitation",
    "change_role",
    "set_member_status",
    "create_team",
    "delete_team",
    "set_team_membership",
    "save_custom_role",
    "delete_custom_role",
    "grant_project_role",
    "revoke_project_grant",
    "create_api_token",
    "revoke_api_token",
    "change_password",
    "TokenMinted",
]

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")
TOKEN_PREFIX = "wsk_"
INVITE_PREFIX = "wsi_"


def normalize_email(email: str, *, field: str = "email") -> str:
    value = (email or "").strip().lower()
    if not EMAIL_RE.match(value) or len(value) > 320:
        raise Invalid("Enter a valid e-mail address, like name@example.com.", field=field)
    return value


# --- tenants and users -------------------------------------------------------------------------


def create_tenant(
    session: Session,
    slug: str,
    name: str,
    owner_email: str,
    owner_password: str | None,
    *,
    owner_name: str = "",
) -> tuple[Tenant, User, str | None]:
    """Create a tenant and its owner. Returns the generated password when none was given."""
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug):
        raise Invalid("Use 1-63 lowercase letters, digits and dashes (not at the ends).", field="slug")
    if not (name or "").strip():
        raise Invalid("Give the organization a name.", field="name")
    email = normalize_email(owner_email, field="owner_email")
    if repo.tenant_by_slug(session, slug) is not None:
        raise Conflict(f"The slug {slug!r} is taken.", field="slug")
    tenant = Tenant(slug=slug, name=name.strip())
    session.add(tenant)
    session.flush()
    bind_tenant(session, tenant.id)
    generated = None
    user = repo.user_by_email(session, email)
    if user is None:
        if owner_password is None:
            generated = owner_password = secrets.token_urlsafe(12)
        check_password_policy(owner_password, field="owner_password")
        user = User(email=email, name=owner_name or email.split("@")[0], password_hash=hash_password(owner_password))
        session.add(user)
        session.flush()
    session.add(Membership(user_id=user.id, role="owner", status=MEMBER_ACTIVE))
    policy.set_member_role(session, tenant.id, user.id, "owner")
    session.flush()
    return tenant, user, generated


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = repo.user_by_email(session, email or "")
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or user is None or not user.is_active:
        return None
    return user


def change_password(session: Session, user: User, current: str, new: str, confirm: str) -> None:
    """Changes the password and ends every other session (the caller re-issues its own)."""
    if not verify_password(user.password_hash, current):
        raise Invalid("That is not your current password.", field="current_password")
    if new != confirm:
        raise Invalid("The two new passwords differ.", field="confirm_password")
    check_password_policy(new, field="new_password")
    user.password_hash = hash_password(new)
    user.session_epoch = user.session_epoch + 1
    session.flush()


# --- roles and the "never above your own" rule -------------------------------------------------


def role_permissions(session: Session, role_key: str) -> frozenset[str]:
    if role_key in BUILTIN_ROLES:
        return builtin_permissions(role_key)
    role = repo.custom_role(session, role_key)
    if role is None:
        raise Invalid(f"There is no role {role_key!r}.", field="role")
    return frozenset(role.permissions)


def role_choices(session: Session, ctx: TenantContext) -> list[tuple[str, str, bool]]:
    """(key, name, grantable by ctx) for every role of the tenant."""
    out = []
    for key in ("owner", "admin", "manager", "reviewer", "annotator", "auditor"):
        out.append((key, BUILTIN_ROLES[key].name, builtin_permissions(key) <= ctx.permissions))
    for role in session.scalars(select(Role).order_by(Role.name)):
        out.append((role.key, role.name, frozenset(role.permissions) <= ctx.permissions))
    return out


def _require_grantable(session: Session, ctx: TenantContext, role_key: str) -> None:
    if not role_permissions(session, role_key) <= ctx.permissions:
        raise Forbidden("You can't grant a role with permissions you don't have yourself.", field="role")


def _require_outranks(session: Session, ctx: TenantContext, member: Membership) -> None:
    if not role_permissions(session, member.role) <= ctx.permissions:
        raise Forbidden("You can't change a member whose role has permissions you don't have.")


def _require_not_last_owner(session: Session, member: Membership) -> None:
    if member.role == "owner" and member.status == MEMBER_ACTIVE and repo.count_active_owners(session) <= 1:
        raise Conflict("This is the last owner: make someone else owner first.", field="role")


# --- members and invitations -------------------------------------------------------------------


def invite_member(
    session: Session, ctx: TenantContext, email: str, role_key: str, *, days: int = 7, base_url: str = ""
) -> tuple[Invitation, str]:
    email = normalize_email(email)
    _require_grantable(session, ctx, role_key)
    existing = repo.user_by_email(session, email)
    if existing is not None and repo.membership_of(session, existing.id) is not None:
        raise Conflict(f"{email} is already a member.", field="email")
    raw = new_secret(INVITE_PREFIX)
    invitation = Invitation(
        email=email,
        role=role_key,
        token_hash=digest(raw),
        invited_by_id=ctx.user_id,
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(invitation)
    session.flush()
    return invitation, raw


@dataclass(frozen=True)
class PendingInvitation:
    invitation_id: int
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    email: str
    role: str
    user_exists: bool


def find_invitation(session: Session, raw: str) -> PendingInvitation:
    # The link carries the token that names the tenant; no tenant is known yet.
    with unscoped(session, "an invitation token identifies its tenant"):
        inv = session.scalars(select(Invitation).where(Invitation.token_hash == digest(raw or ""))).first()
        tenant = session.get(Tenant, inv.tenant_id) if inv else None
    if inv is None or tenant is None or inv.revoked_at is not None:
        raise NotFound("This invitation link is not valid.")
    if inv.accepted_at is not None:
        raise Invalid("This invitation was already accepted; log in instead.")
    if as_utc(inv.expires_at) < utcnow():  # type: ignore[operator]
        raise Invalid("This invitation has expired; ask for a new one.")
    return PendingInvitation(inv.id, tenant.id, tenant.slug, tenant.name, inv.email, inv.role,
                             repo.user_by_email(session, inv.email) is not None)


def accept_invitation(
    session: Session,
    raw: str,
    *,
    current_user: User | None,
    name: str = "",
    password: str = "",
    actor: Actor | None = None,
) -> tuple[Tenant, User]:
    pending = find_invitation(session, raw)
    bind_tenant(session, pending.tenant_id)
    invitation = repo.fetch(session, Invitation, pending.invitation_id)
    user = repo.user_by_email(session, pending.email)
    if actor is not None:  # the invitee acts, identified by the invited address until they exist
        set_actor(session, Actor("invitee", None, pending.email, actor.ip, actor.user_agent, actor.request_id))
    if user is None:
        check_password_policy(password)
        user = User(email=pending.email, name=(name or "").strip() or pending.email.split("@")[0],
                    password_hash=hash_password(password))
        session.add(user)
        session.flush()
    elif current_user is None or current_user.id != user.id:
        raise Forbidden(f"Log in as {pending.email} to accept this invitation.")
    if actor is not None:
        set_actor(session, Actor("user", str(user.id), user.email, actor.ip, actor.user_agent, actor.request_id))
    if repo.membership_of(session, user.id) is not None:
        raise Conflict("You are already a member of this organization.")
    invitation.accepted_at = utcnow()
    session.add(Membership(user_id=user.id, role=invitation.role, status=MEMBER_ACTIVE))
    policy.set_member_role(session, pending.tenant_id, user.id, invitation.role)
    session.flush()
    tenant = repo.fetch(session, Tenant, pending.tenant_id)
    return tenant, user


def revoke_invitation(session: Session, ctx: TenantContext, invitation_id: int) -> None:
    invitation = repo.fetch(session, Invitation, invitation_id, what="Invitation")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        session.flush()


def change_role(session: Session, ctx: TenantContext, membership_id: int, role_key: str) -> Membership:
    member = repo.fetch(session, Membership, membership_id, what="Member")
    role_permissions(session, role_key)  # exists?
    _require_outranks(session, ctx, member)
    _require_grantable(session, ctx, role_key)
    if member.role == role_key:
        return member
    if role_key != "owner":
        _require_not_last_owner(session, member)
    member.role = role_key
    if member.status == MEMBER_ACTIVE:
        policy.set_member_role(session, ctx.tenant_id, member.user_id, role_key)
    session.flush()
    return member


def set_member_status(session: Session, ctx: TenantContext, membership_id: int, active: bool) -> Membership:
    member = repo.fetch(session, Membership, membership_id, what="Member")
    if member.user_id == ctx.user_id and not active:
        raise Invalid("You can't deactivate yourself.")
    _require_outranks(session, ctx, member)
    if not active:
        _require_not_last_owner(session, member)
    status = MEMBER_ACTIVE if active else MEMBER_DEACTIVATED
    if member.status == status:
        return member
    member.status = status
    policy.set_member_role(session, ctx.tenant_id, member.user_id, member.role if active else None)
    if not active:
        # Their API keys in this tenant stop at once (and stay revoked if reactivated).
        for token in session.scalars(
            select(ApiToken).where(ApiToken.user_id == member.user_id, ApiToken.revoked_at.is_(None))
        ):
            token.revoked_at = utcnow()
    session.flush()
    return member


# --- teams -------------------------------------------------------------------------------------


def create_team(session: Session, ctx: TenantContext, name: str, description: str = "") -> Team:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise Invalid("Give the team a name of 1-120 characters.", field="name")
    if session.scalars(select(Team).where(Team.name == name)).first() is not None:
        raise Conflict(f"A team named {name!r} exists already.", field="name")
    team = Team(name=name, description=(description or "").strip())
    session.add(team)
    session.flush()
    return team


def delete_team(session: Session, ctx: TenantContext, team_id: int) -> None:
    team = repo.fetch(session, Team, team_id, what="Team")
    for tm in repo.team_members(session, team.id):
        session.delete(tm)
    for grant in session.scalars(select(ProjectGrant).where(ProjectGrant.team_id == team.id)):
        session.delete(grant)
    policy.drop_team(session, ctx.tenant_id, team.id)
    session.delete(team)
    session.flush()


def set_team_membership(session: Session, ctx: TenantContext, team_id: int, user_id: int, present: bool) -> None:
    team = repo.fetch(session, Team, team_id, what="Team")
    if repo.membership_of(session, user_id) is None:
        raise NotFound("Member not found")
    existing = session.scalars(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    ).first()
    if present and existing is None:
        session.add(TeamMember(team_id=team.id, user_id=user_id))
    elif not present and existing is not None:
        session.delete(existing)
    else:
        return
    policy.set_team_member(session, ctx.tenant_id, team.id, user_id, present)
    session.flush()


# --- custom roles ------------------------------------------------------------------------------


def save_custom_role(
    session: Session, ctx: TenantContext, key: str, name: str, permissions: list[str], *, role_id: int | None = None
) -> Role:
    unknown = sorted(set(permissions) - set(CATALOGUE))
    if unknown:
        raise Invalid(f"Unknown permissions: {', '.join(unknown)}.", field="permissions")
    if not set(permissions) <= ctx.permissions:
        raise Forbidden("A role can only hold permissions you have yourself.", field="permissions")
    if not (name or "").strip():
        raise Invalid("Give the role a name.", field="name")
    if role_id is None:
        key = (key or "").strip().lower()
        if not KEY_RE.match(key):
            raise Invalid("Use 2-41 lowercase letters, digits, - or _, starting with a letter.", field="key")
        if key in BUILTIN_ROLES or repo.custom_role(session, key) is not None:
            raise Conflict(f"A role {key!r} exists already.", field="key")
        role = Role(key=key, name=name.strip(), permissions=sorted(set(permissions)))
        session.add(role)
    else:
        role = repo.fetch(session, Role, role_id, what="Role")
        role.name = name.strip()
        role.permissions = sorted(set(permissions))
    policy.set_custom_role(session, ctx.tenant_id, role.key, role.permissions)
    session.flush()
    return role


def delete_custom_role(session: Session, ctx: TenantContext, role_id: int) -> None:
    role = repo.fetch(session, Role, role_id, what="Role")
    in_use = session.scalars(select(Membership).where(Membership.role == role.key)).first()
    if in_use is not None:
        raise Conflict("Members hold this role: give them another role first.")
    policy.set_custom_role(session, ctx.tenant_id, role.key, None)
    session.delete(role)
    session.flush()


# --- per-project grants ------------------------------------------------------------------------


def grant_project_role(
    session: Session, ctx: TenantContext, project_id: int, role_key: str, *, user_id: int | None = None,
    team_id: int | None = None,
) -> ProjectGrant:
    from workspace.workflow.services import get_project  # a grant is about a project of this tenant

    get_project(session, project_id)
    if role_key not in PROJECT_ROLES:
        raise Invalid(f"A project role is one of {', '.join(PROJECT_ROLES)}.", field="role")
    _require_grantable(session, ctx, role_key)
    if (user_id is None) == (team_id is None):
        raise Invalid("Grant to one member or one team.", field="subject")
    if user_id is not None:
        if repo.membership_of(session, user_id) is None:
            raise NotFound("Member not found")
        subject = f"u:{user_id}"
        current = session.scalars(select(ProjectGrant).where(
            ProjectGrant.project_id == project_id, ProjectGrant.user_id == user_id)).first()
    else:
        repo.fetch(session, Team, team_id, what="Team")  # type: ignore[arg-type]
        subject = f"team:{team_id}"
        current = session.scalars(select(ProjectGrant).where(
            ProjectGrant.project_id == project_id, ProjectGrant.team_id == team_id)).first()
    if current is None:
        current = ProjectGrant(project_id=project_id, user_id=user_id, team_id=team_id, role=role_key)
        session.add(current)
    else:
        current.role = role_key
    policy.set_project_grant(session, ctx.tenant_id, project_id, subject, role_key)
    session.flush()
    return current


def revoke_project_grant(session: Session, ctx: TenantContext, grant_id: int, *, project_id: int | None = None) -> None:
    grant = repo.fetch(session, ProjectGrant, grant_id, what="Grant")
    if project_id is not None and grant.project_id != project_id:
        raise NotFound("Grant not found")
    _require_grantable(session, ctx, grant.role)
    subject = f"u:{grant.user_id}" if grant.user_id is not None else f"team:{grant.team_id}"
    policy.set_project_grant(session, ctx.tenant_id, grant.project_id, subject, None)
    session.delete(grant)
    session.flush()


# --- API tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenMinted:
    token: ApiToken
    key: str  # shown once


def create_api_token(
    session: Session, tenant_id: int, user_id: int, name: str, *, expires_days: int | None = None
) -> TokenMinted:
    name = (name or "").strip() or "API token"
    if len(name) > 120:
        raise Invalid("Use at most 120 characters.", field="name")
    if expires_days is not None and not (1 <= expires_days <= 3650):
        raise Invalid("Expiry is 1 to 3650 days, or none.", field="expires_days")
    key = new_secret(TOKEN_PREFIX)
    token = ApiToken(
        tenant_id=tenant_id,
        user_id=user_id,
        name=name,
        prefix=key[: len(TOKEN_PREFIX) + 6],
        token_hash=digest(key),
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    return TokenMinted(token, key)


def revoke_api_token(session: Session, ctx: TenantContext, token_id: int) -> ApiToken:
    token = repo.fetch(session, ApiToken, token_id, what="Token")
    if token.user_id != ctx.user_id and not ctx.has("token:manage"):
        raise NotFound("Token not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def resolve_api_key(session: Session, key: str) -> repo.ApiCaller | None:
    """Whom a presented legacy key speaks for, if the key is live, or None (unknown, revoked, expired)."""
    if not key or not key.startswith(TOKEN_PREFIX) or len(key) > 200:
        return None
    token = repo.api_caller(session, token_hash=digest(key))
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and as_utc(token.expires_at) <= utcnow():  # type: ignore[operator]
        return None
    return token


"""Personal access tokens: Label Studio's JWT refresh tokens, exchanged for short-lived access tokens.

A personal access token (PAT) is an ``ApiToken`` row like a legacy key: it belongs to one member of
one tenant, only its SHA-256 is stored, it is shown once, it can expire and be revoked, and every
call made with it is scoped and authorized exactly like a legacy key's. What differs is the shape
the Label Studio SDK expects:

* the PAT itself is a JWT (``token_type: refresh``, an ``exp`` claim: the SDK refuses a token
  without one) signed HS256 with a key derived from the app's secret;
* ``POST /api/token/refresh/`` trades it for an access JWT (``token_type: access``) that lives five
  minutes and names the PAT's row (``tid``); the SDK sends it as ``Authorization: Bearer <jwt>``;
* each use of an access token re-reads its PAT: revoking the PAT (or its member leaving) stops its
  access tokens at once, not only when they expire.

The signature proves the token was minted here; the stored hash and the row's state decide whether it
still works. A PAT's row is told from a legacy key's by its prefix (``pat_`` and part of its ``jti``).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy.orm import Session

from workspace.lib.secrets import digest
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy import repositories as repo
from workspace.tenancy.errors import Invalid
from workspace.tenancy.models import ApiToken
from workspace.tenancy.scoping import bind_tenant

__all__ = ["PAT_PREFIX", "ACCESS_LIFETIME", "create_personal_token", "refresh_access_token", "resolve_access_token",
           "revoke_personal_token", "is_personal", "looks_like_jwt", "PersonalTokenMinted"]

PAT_PREFIX = "pat_"
ACCESS_LIFETIME = timedelta(minutes=5)
# A PAT without an expiry still needs an ``exp`` (the SDK requires one): Label Studio uses ~200 years.
NO_EXPIRY = timedelta(days=365 * 100)
MAX_TOKEN_CHARS = 4096
_ALGORITHMS = ["HS256"]
_HEADER = {"alg": "HS256", "typ": "JWT"}


class PersonalTokenMinted:
    def __init__(self, token: ApiToken, key: str) -> None:
        self.token = token
        self.key = key  # the refresh JWT, shown once


@lru_cache(maxsize=8)
def _key(secret: str) -> OctKey:
    """The signing key: derived from the app secret, so rotating the secret ends every PAT."""
    return OctKey.import_key(hmac.new(secret.encode("utf-8"), b"workspace personal access tokens v1",
                                      hashlib.sha256).digest())


def looks_like_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2 and len(value) <= MAX_TOKEN_CHARS


class _TokenLike(Protocol):
    """What the checks below read: an :class:`ApiToken` or a :class:`~workspace.tenancy.repositories.ApiCaller`."""

    prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None


def is_personal(token: _TokenLike) -> bool:
    return token.prefix.startswith(PAT_PREFIX)


def _claims(text: str, secret: str, token_type: str) -> dict[str, Any] | None:
    """The verified claims of a JWT of this type minted here and not expired, else None."""
    if not looks_like_jwt(text):
        return None
    try:
        decoded = jwt.decode(text, _key(secret), algorithms=_ALGORITHMS)
        jwt.JWTClaimsRegistry(exp={"essential": True}, token_type={"essential": True, "value": token_type},
                              user_id={"essential": True}).validate(decoded.claims)
    except (JoseError, ValueError, TypeError):
        return None
    return dict(decoded.claims)


_Token = TypeVar("_Token", bound=_TokenLike)


def _live(token: _Token | None) -> _Token | None:
    if token is None or token.revoked_at is not None or not is_personal(token):
        return None
    if token.expires_at is not None and as_utc(token.expires_at) <= utcnow():  # type: ignore[operator]
        return None
    return token


def create_personal_token(session: Session, tenant_id: int, user_id: int, name: str, secret: str, *,
                          expires_days: int | None = None) -> PersonalTokenMinted:
    """Mint a PAT for a member (the session is bound to their tenant); the row stores its hash only."""
    name = (name or "").strip() or "Personal access token"
    if len(name) > 120:
        raise Invalid("Use at most 120 characters.", field="name")
    if expires_days is not None and not (1 <= expires_days <= 3650):
        raise Invalid("Expiry is 1 to 3650 days, or none.", field="expires_days")
    now = utcnow()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    jti = uuid.uuid4().hex
    claims = {"token_type": "refresh", "iat": int(now.timestamp()),
              "exp": int((expires_at or now + NO_EXPIRY).timestamp()), "jti": jti, "user_id": str(user_id),
              "tenant_id": tenant_id}
    key = jwt.encode(_HEADER, claims, _key(secret))
    token = ApiToken(tenant_id=tenant_id, user_id=user_id, name=name, prefix=PAT_PREFIX + jti[:8],
                     token_hash=digest(key), expires_at=expires_at)
    session.add(token)
    session.flush()
    return PersonalTokenMinted(token, key)


def _by_refresh(session: Session, refresh: str, secret: str) -> ApiToken | None:
    claims = _claims(refresh, secret, "refresh")
    if claims is None:
        return None
    token = repo.token_by_hash(session, digest(refresh))
    if token is None or str(token.user_id) != str(claims.get("user_id")):
        return None
    return token


def refresh_access_token(session: Session, refresh: str, secret: str) -> str | None:
    """A fresh access JWT for a live PAT, or None (not ours, tampered, expired, revoked, unknown)."""
    token = _live(_by_refresh(session, refresh, secret))
    if token is None:
        return None
    now = utcnow()
    claims = {"token_type": "access", "iat": int(now.timestamp()), "exp": int((now + ACCESS_LIFETIME).timestamp()),
              "jti": uuid.uuid4().hex, "user_id": str(token.user_id), "tid": token.id,
              "tenant_id": token.tenant_id}
    return jwt.encode(_HEADER, claims, _key(secret))


def resolve_access_token(session: Session, access: str, secret: str) -> repo.ApiCaller | None:
    """Whom the live PAT behind an access JWT speaks for, or None. Checked on every call: revocation
    is immediate. The token names its tenant: it is looked up before a tenant is known."""
    claims = _claims(access, secret, "access")
    if claims is None or not isinstance(claims.get("tid"), int):
        return None
    token = _live(repo.api_caller(session, token_id=claims["tid"]))
    if token is None or str(token.user_id) != str(claims.get("user_id")):
        return None
    return token


def revoke_personal_token(session: Session, refresh: str, secret: str) -> ApiToken | None:
    """Revoke the PAT presented (holding it is the authority to revoke it); None if it is not one of ours."""
    token = _by_refresh(session, refresh, secret)
    if token is None or not is_personal(token):
        return None
    bind_tenant(session, token.tenant_id)  # the change is the token's tenant's, audited there
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token

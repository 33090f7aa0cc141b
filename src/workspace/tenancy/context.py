"""The immutable per-request (or per-job) context: who acts, in which tenant, with which permissions."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TenantContext"]


@dataclass(frozen=True)
class TenantContext:
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    user_id: int
    user_email: str
    user_name: str
    membership_id: int
    role: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    via: str = "session"  # "session" or "token"
    token_id: int | None = None

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def flags(self) -> dict[str, bool]:
        """Permission flags for templates ("member_invite": True, ...): no role names in templates."""
        return {p.replace(":", "_"): True for p in self.permissions}

"""The permission catalogue and the built-in roles (pure data and rules, no I/O).

A permission is ``(resource, action)``, written ``"resource:action"``. Built-in roles form the chain
owner > admin > manager > reviewer > annotator (each inherits the one below); auditor stands apart.

Where a role's permissions hold:

* Project permissions (:data:`PROJECT_PERMISSIONS`: read, annotate, review, update, delete a project)
  can hold tenant-wide or inside one project (a project grant to a member or a team, domain
  ``t<tenant>/p<project>``). ``project:create`` is tenant-level: it is about no existing project.
* A **project-scoped** role (``RoleDef.project_scoped``; of the built-in roles only ``annotator``) holds
  its project permissions only inside the projects granted to the member, directly or through a team;
  its other permissions (``tenant:read``, ``token:own``) hold tenant-wide. For such a member a project
  outside their grants does not exist: its pages answer 404 like a missing one.
* Reviewer, manager, admin and owner hold their project permissions tenant-wide (every project);
  the auditor holds ``project:read`` tenant-wide.
* Custom roles are not project-scoped: their permissions hold tenant-wide, exactly as written. A
  custom role without project permissions gives project access through project grants only, which
  is how a tenant makes its own "project-scoped" role; keep ``project:*`` out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATALOGUE",
    "BUILTIN_ROLES",
    "BUILTIN_ORDER",
    "PROJECT_ROLES",
    "PROJECT_PERMISSIONS",
    "RoleDef",
    "is_project_scoped",
    "builtin_permissions",
    "perm",
]

# Every permission the product knows, with what it lets a member do.
CATALOGUE: dict[str, str] = {
    "tenant:read": "See the organization and its home page",
    "tenant:update": "Rename the organization; hand over ownership",
    "member:read": "List members and their roles",
    "member:invite": "Invite people",
    "member:update": "Change members' roles",
    "member:deactivate": "Deactivate and reactivate members",
    "team:read": "List teams",
    "team:manage": "Create teams and change their members",
    "role:read": "See roles and the permission matrix",
    "role:manage": "Create and change custom roles",
    "authz:explain": "Ask why a member may or may not do something",
    "token:own": "Create and revoke one's own API tokens",
    "token:manage": "See and revoke other members' API tokens",
    "audit:read": "Read the audit log",
    "audit:verify": "Verify the audit chain",
    "report:read": "See reports and dashboards",
    "project:read": "See projects",
    "project:create": "Create projects",
    "project:update": "Change project settings and grants",
    "project:delete": "Delete projects",
    "project:annotate": "Label tasks",
    "project:review": "Review annotations",
}


@dataclass(frozen=True)
class RoleDef:
    key: str
    name: str
    description: str
    inherits: str | None
    own: frozenset[str]
    rank: int
    project_scoped: bool = False  # project permissions hold only inside projects granted to the member


_ROLES = [
    RoleDef("annotator", "Annotator", "Labels the tasks of the projects granted to them", None,
            frozenset({"tenant:read", "project:read", "project:annotate", "token:own"}), 1, project_scoped=True),
    RoleDef("reviewer", "Reviewer", "Annotator, and accepts or rejects annotations", "annotator",
            frozenset({"project:review"}), 2),
    RoleDef("manager", "Manager", "Reviewer, and runs projects: creates, configures, assigns",
            "reviewer",
            frozenset({"project:create", "project:update", "project:delete", "member:read", "team:read",
                       "role:read", "report:read"}), 3),
    RoleDef("admin", "Admin", "Manager, and administers members, teams, roles, tokens and the audit log",
            "manager",
            frozenset({"member:invite", "member:update", "member:deactivate", "team:manage", "role:manage",
                       "token:manage", "audit:read", "audit:verify", "authz:explain"}), 4),
    RoleDef("owner", "Owner", "Admin, and owns the organization", "admin", frozenset({"tenant:update"}), 5),
    RoleDef("auditor", "Auditor", "Reads the audit log and reports; changes nothing", None,
            frozenset({"tenant:read", "audit:read", "audit:verify", "report:read", "member:read", "team:read",
                       "role:read", "project:read", "authz:explain", "token:own"}), 0),
]

BUILTIN_ROLES: dict[str, RoleDef] = {r.key: r for r in _ROLES}
BUILTIN_ORDER = ["owner", "admin", "manager", "reviewer", "annotator", "auditor"]
PROJECT_ROLES = ("manager", "reviewer", "annotator")
# Permissions about one existing project: grantable per project, and held by a project-scoped role only
# inside its member's granted projects.
PROJECT_PERMISSIONS = frozenset({"project:read", "project:annotate", "project:review", "project:update",
                                 "project:delete"})


def is_project_scoped(role_key: str) -> bool:
    """Whether a member with this tenant role holds project permissions only in granted projects."""
    role = BUILTIN_ROLES.get(role_key)
    return role is not None and role.project_scoped


def builtin_permissions(key: str) -> frozenset[str]:
    """All permissions of a built-in role, inherited ones included."""
    perms: set[str] = set()
    role: RoleDef | None = BUILTIN_ROLES[key]
    while role is not None:
        perms |= role.own
        role = BUILTIN_ROLES[role.inherits] if role.inherits else None
    return frozenset(perms)


def perm(resource: str, action: str) -> str:
    value = f"{resource}:{action}"
    if value not in CATALOGUE:
        raise KeyError(f"unknown permission {value}")
    return value

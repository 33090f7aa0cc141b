"""Authorization: casbin RBAC with domains, the tenant as the domain.

Subjects are ``u:<user id>`` and ``team:<team id>``; roles are ``role:<key>``. Domains:
``t<tenant id>`` for tenant-wide membership roles and custom-role permissions, and
``t<tenant id>/p<project id>`` for per-project grants. Role inheritance among the built-in roles and
their permissions are code (domain ``*``), loaded into every enforcer; tenant data (who holds which
role, team members, grants, custom roles) is rows of ``casbin_rule`` written in the same database
transaction as the change it mirrors, read back through ``sqlalchemy_adapter``.

Project-scoped roles (the built-in annotator, see :mod:`workspace.tenancy.permissions`): their project
permissions are rules in the pseudo-domain ``projects``, which the matcher lets apply in project
domains only. An annotator's tenant membership (``t<tenant>``) therefore gives ``tenant:read`` but no
``project:read``; a grant on a project (``t<tenant>/p<project>``, to them or to one of their teams)
gives the annotator role there. Roles that inherit a project-scoped role (reviewer inherits annotator)
hold those project permissions in every domain through rules of their own.

Freshness: each change bumps ``tenant.policy_version`` in that transaction. Every request compares the
tenant's version with the one its process loaded and reloads when it moved, so a role change holds
on the very next request in every process. With Redis configured, a committed change is also
published through ``redis_watcher`` so idle processes reload eagerly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import casbin
from casbin.util import key_match
from sqlalchemy import Engine, delete, event, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy_adapter import Adapter

from workspace.db.engine import readonly_engine
from workspace.tenancy.models import CasbinRule, Tenant
from workspace.tenancy.permissions import BUILTIN_ROLES, CATALOGUE, PROJECT_PERMISSIONS

__all__ = ["Authz", "Decision", "policy", "tenant_dom", "project_dom", "attach_redis_watcher"]

# casbin's enforce is not thread-safe: each call writes into the enforcer's shared function map while
# simpleeval iterates it ("dictionary changed size during iteration" on a new enforcer's first
# concurrent calls), and parses the matcher with ``ast``, which CPython 3.11 does not make safe across
# threads either. Every evaluation holds this lock (the permissions memo keeps that rare and short).
_ENFORCE = threading.Lock()

log = logging.getLogger(__name__)

MODEL_TEXT = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom || (p.dom == "projects" && isProjectDomain(r.dom))) && r.obj == p.obj && r.act == p.act
"""
# The p-rule domain of a project-scoped role's project permissions: any project domain, no tenant domain.
PROJECTS_ONLY = "projects"


def tenant_dom(tenant_id: int) -> str:
    return f"t{tenant_id}"


def project_dom(tenant_id: int, project_id: int) -> str:
    return f"t{tenant_id}/p{project_id}"


def _all_projects_dom(tenant_id: int) -> str:
    return f"t{tenant_id}/*"


def is_project_domain(dom: str) -> bool:
    """``t<tenant>/p<project>`` (not a tenant domain, not the ``t<tenant>/*`` team domain)."""
    tenant, sep, project = dom.partition("/p")
    return bool(sep) and tenant[:1] == "t" and tenant[1:].isdigit() and project.isdigit()


def _builtin_rules() -> tuple[list[list[str]], list[list[str]]]:
    p_rules, g_rules = [], []
    for role in BUILTIN_ROLES.values():
        rules = {(p, PROJECTS_ONLY if role.project_scoped and p in PROJECT_PERMISSIONS else "*") for p in role.own}
        if not role.project_scoped:
            # Inherited from project-scoped roles: these hold everywhere for this role.
            parent = BUILTIN_ROLES[role.inherits] if role.inherits else None
            while parent is not None and parent.project_scoped:
                rules |= {(p, "*") for p in parent.own & PROJECT_PERMISSIONS}
                parent = BUILTIN_ROLES[parent.inherits] if parent.inherits else None
        for permission, dom in sorted(rules):
            obj, act = permission.split(":")
            p_rules.append([f"role:{role.key}", dom, obj, act])
        if role.inherits:
            g_rules.append([f"role:{role.key}", f"role:{role.inherits}", "*"])
    return p_rules, g_rules


@dataclass(frozen=True)
class Decision:
    allowed: bool
    permission: str
    domain: str
    path: list[str]  # subject -> ... -> role that holds the permission
    rule: list[str]


class Authz:
    """One per process. Thread-safe: reloads build a new enforcer and swap it in."""

    def __init__(self, engine: Engine) -> None:
        engine = readonly_engine(engine)
        self._adapter = Adapter(engine, db_class=CasbinRule, create_table=False)
        self._engine = engine
        self._lock = threading.Lock()
        self._versions: dict[int, int] = {}
        self._stale = True
        self._enforcer: casbin.Enforcer | None = None
        self._memo: tuple[casbin.Enforcer | None, dict[tuple[int, int, int | None], frozenset[str]]] = (None, {})
        self.on_commit: Callable[[], None] | None = None

    # -- loading ------------------------------------------------------------------------------
    def _build(self) -> casbin.Enforcer:
        model = casbin.Enforcer.new_model(text=MODEL_TEXT)
        enforcer = casbin.Enforcer(model, self._adapter)
        enforcer.enable_auto_save(False)
        enforcer.enable_log(False) if hasattr(enforcer, "enable_log") else None
        enforcer.add_named_domain_matching_func("g", key_match)
        enforcer.add_function("isProjectDomain", is_project_domain)
        p_rules, g_rules = _builtin_rules()
        enforcer.add_policies(p_rules)
        enforcer.add_grouping_policies(g_rules)
        enforcer.build_role_links()
        return enforcer

    def reload(self) -> None:
        with self._lock:
            # Cleared first: a change announced while this reload runs marks it stale again.
            self._stale = False
            with self._engine.connect() as conn:
                versions = dict(conn.execute(select(Tenant.id, Tenant.policy_version)).all())
            enforcer = self._build()
            self._versions = versions
            self._enforcer = enforcer

    def mark_stale(self, *_args: object) -> None:
        """Watcher callback: another process committed a change."""
        self._stale = True

    def ensure_fresh(self, tenant_id: int, version: int) -> None:
        if self._stale or self._enforcer is None or self._versions.get(tenant_id) != version:
            self.reload()

    @property
    def enforcer(self) -> casbin.Enforcer:
        if self._enforcer is None or self._stale:
            self.reload()
        assert self._enforcer is not None
        return self._enforcer

    # -- questions ----------------------------------------------------------------------------
    def can(self, user_id: int, tenant_id: int, permission: str, project_id: int | None = None) -> bool:
        return self._can(self.enforcer, user_id, tenant_id, permission, project_id)

    @staticmethod
    def _can(e: casbin.Enforcer, user_id: int, tenant_id: int, permission: str, project_id: int | None) -> bool:
        obj, act = permission.split(":")
        sub = f"u:{user_id}"
        with _ENFORCE:
            if e.enforce(sub, tenant_dom(tenant_id), obj, act):
                return True
            return project_id is not None and e.enforce(sub, project_dom(tenant_id, project_id), obj, act)

    def permissions(self, user_id: int, tenant_id: int, project_id: int | None = None) -> frozenset[str]:
        """What the member may do in the tenant, and with ``project_id`` also inside that project.

        Every request asks this (one casbin evaluation per catalogue entry, ~10 ms), so the answer is
        memoized per enforcer: a policy change builds a new enforcer, which starts with an empty memo.
        """
        e = self.enforcer
        memo = self._memo
        if memo[0] is not e:
            memo = self._memo = (e, {})
        key = (user_id, tenant_id, project_id)
        found = memo[1].get(key)
        if found is None:
            found = frozenset(p for p in CATALOGUE if self._can(e, user_id, tenant_id, p, project_id))
            if len(memo[1]) >= 50_000:
                memo[1].clear()
            memo[1][key] = found
        return found

    def explain(self, user_id: int, tenant_id: int, permission: str, project_id: int | None = None) -> Decision:
        obj, act = permission.split(":")
        e = self.enforcer
        sub = f"u:{user_id}"
        domains = [tenant_dom(tenant_id)] + ([project_dom(tenant_id, project_id)] if project_id else [])
        for dom in domains:
            with _ENFORCE:
                allowed, rule = e.enforce_ex(sub, dom, obj, act)
            if allowed:
                return Decision(True, permission, dom, self._path(e, sub, rule[0], dom), list(rule))
        return Decision(False, permission, domains[-1], [], [])

    def _path(self, e: casbin.Enforcer, sub: str, target: str, dom: str) -> list[str]:
        """Breadth-first search of role links from the subject to the role holding the rule."""
        rm = e.get_role_manager()
        frontier = [[sub]]
        seen = {sub}
        while frontier:
            nxt = []
            for path in frontier:
                for role in rm.get_roles(path[-1], dom):
                    if role in seen:
                        continue
                    if role == target:
                        return path + [role]
                    seen.add(role)
                    nxt.append(path + [role])
            frontier = nxt
        return [sub, target]

    def roles_in(self, subject: str, domain: str) -> list[str]:
        return list(self.enforcer.get_role_manager().get_roles(subject, domain))


class _PolicyWriter:
    """Writes casbin rows in the caller's transaction and bumps the tenant's policy version."""

    def _bump(self, session: Session, tenant_id: int) -> None:
        session.execute(
            update(Tenant).where(Tenant.id == tenant_id).values(policy_version=Tenant.policy_version + 1)
        )
        session.info["policy_changed"] = True

    def _delete(self, session: Session, ptype: str, **values: str) -> None:
        stmt = delete(CasbinRule).where(CasbinRule.ptype == ptype)
        for column, value in values.items():
            stmt = stmt.where(getattr(CasbinRule, column) == value)
        session.execute(stmt)

    def _add(self, session: Session, tenant_id: int, rows: Iterable[tuple[str, ...]], ptype: str) -> None:
        payload = [
            {"ptype": ptype, "tenant_id": tenant_id, **{f"v{i}": v for i, v in enumerate(row)}} for row in rows
        ]
        if payload:
            session.execute(insert(CasbinRule), payload)

    def set_member_role(self, session: Session, tenant_id: int, user_id: int, role_key: str | None) -> None:
        self._delete(session, "g", v0=f"u:{user_id}", v2=tenant_dom(tenant_id))
        if role_key:
            self._add(session, tenant_id, [(f"u:{user_id}", f"role:{role_key}", tenant_dom(tenant_id))], "g")
        self._bump(session, tenant_id)

    def set_team_member(self, session: Session, tenant_id: int, team_id: int, user_id: int, present: bool) -> None:
        row = (f"u:{user_id}", f"team:{team_id}", _all_projects_dom(tenant_id))
        self._delete(session, "g", v0=row[0], v1=row[1], v2=row[2])
        if present:
            self._add(session, tenant_id, [row], "g")
        self._bump(session, tenant_id)

    def drop_team(self, session: Session, tenant_id: int, team_id: int) -> None:
        self._delete(session, "g", v1=f"team:{team_id}")
        self._delete(session, "g", v0=f"team:{team_id}")
        self._bump(session, tenant_id)

    def set_project_grant(
        self, session: Session, tenant_id: int, project_id: int, subject: str, role_key: str | None
    ) -> None:
        dom = project_dom(tenant_id, project_id)
        self._delete(session, "g", v0=subject, v2=dom)
        if role_key:
            self._add(session, tenant_id, [(subject, f"role:{role_key}", dom)], "g")
        self._bump(session, tenant_id)

    def drop_project(self, session: Session, tenant_id: int, project_id: int) -> None:
        """A deleted project's grants go with it (ids may be reused on SQLite)."""
        self._delete(session, "g", v2=project_dom(tenant_id, project_id))
        self._bump(session, tenant_id)

    def set_custom_role(self, session: Session, tenant_id: int, key: str, permissions: Iterable[str] | None) -> None:
        dom = tenant_dom(tenant_id)
        self._delete(session, "p", v0=f"role:{key}", v1=dom)
        if permissions is not None:
            rows = [(f"role:{key}", dom, *p.split(":")) for p in sorted(set(permissions))]
            self._add(session, tenant_id, rows, "p")
        self._bump(session, tenant_id)


policy = _PolicyWriter()


def _after_commit(session: Session) -> None:
    if not session.info.pop("policy_changed", False):
        return
    authz = session.info.get("authz")
    if authz is None:
        return
    authz.mark_stale()
    if authz.on_commit is not None:
        try:
            authz.on_commit()
        except Exception:  # the per-request version check still guarantees freshness
            log.exception("could not publish the policy change")


def _after_rollback(session: Session) -> None:
    session.info.pop("policy_changed", None)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)


def attach_redis_watcher(authz: Authz, redis_url: str) -> object:
    """Publish committed policy changes on Redis and mark this process stale on others' changes."""
    from urllib.parse import urlparse

    from redis_watcher import WatcherOptions, new_watcher

    parsed = urlparse(redis_url)
    options = WatcherOptions()
    options.host = parsed.hostname or "127.0.0.1"
    options.port = str(parsed.port or 6379)
    options.password = parsed.password
    options.ssl = parsed.scheme == "rediss"
    options.channel = "/workspace/casbin"
    options.optional_update_callback = authz.mark_stale
    watcher = new_watcher(options)
    authz.on_commit = watcher.update
    return watcher

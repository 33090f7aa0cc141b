"""Fail-closed tenant scoping for every ORM statement.

The tenant lives on the SQLAlchemy session (``session.info``), set once per request or job by
``bind_tenant``. A ``do_orm_execute`` hook adds ``tenant_id = <current>`` to every SELECT, UPDATE and
DELETE that touches a ``TenantOwned`` model (including relationship and lazy loads) and **raises**
when no tenant is bound. A ``before_flush`` hook stamps ``tenant_id`` on new rows and refuses rows of
another tenant. This module is the only place an ORM statement's tenant filter is written.

A few hot paths run Core statements on the tables, which this hook does not see (the prediction write
and the first submit of a task in ``lsapi.services`` and ``workflow.annotations``). Each of those names
the tenant itself, with the value from ``bulk_tenant_id``, which raises when no tenant is bound, so
they fail closed too (``tests/isolation/test_models.py`` checks the prediction lookup).

Explicit, greppable escape hatch: ``unscoped(session, reason)``, for cross-tenant work that is by
nature global (login lookups of a user's memberships, the audit verifier, CLI admin commands). The
API credential lookup (``repositories.api_caller``) is global too; it is a Core query on the connection.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from typing import Any, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from workspace.db.base import TenantOwned

__all__ = ["TenantScopeError", "bind_tenant", "current_tenant_id", "unscoped", "install", "stamp_rows",
           "bulk_tenant_id", "already_loaded"]

M = TypeVar("M")

_TENANT = "tenant_id"
_UNSCOPED = "unscoped_reason"


class TenantScopeError(RuntimeError):
    """A tenant-owned table was queried or written with no tenant bound (a programming error)."""


def bind_tenant(session: Session, tenant_id: int) -> None:
    existing = session.info.get(_TENANT)
    if existing is not None and existing != tenant_id:
        raise TenantScopeError(f"session already bound to tenant {existing}, not {tenant_id}")
    session.info[_TENANT] = tenant_id


def current_tenant_id(session: Session) -> int | None:
    return session.info.get(_TENANT)


def bulk_tenant_id(session: Session) -> int:
    """The tenant to write on bulk-inserted rows: the session's bound tenant, never a value from input.

    For fast paths that build rows as tuples (COPY, raw ``executemany``) instead of dicts; raises
    when no tenant is bound, like :func:`stamp_rows`.
    """
    tenant_id = session.info.get(_TENANT)
    if tenant_id is None:
        raise TenantScopeError("bulk insert of tenant-owned rows with no tenant bound to the session")
    return tenant_id


def stamp_rows(session: Session, rows: list[dict]) -> list[dict]:
    """Bulk inserts (Core/ORM ``insert()`` with parameter lists) skip the flush hook: stamp them here."""
    tenant_id = bulk_tenant_id(session)
    for row in rows:
        row["tenant_id"] = tenant_id
    return rows


def already_loaded(session: Session, model: type[M], object_id: Any) -> M | None:
    """The ``model`` row with this primary key that the session already holds, current and of the
    bound tenant, or None (then query it). A request that loaded a task or project once need not load
    it again; a row of another tenant, an expired or a deleted one is never answered from here."""
    tenant_id = session.info.get(_TENANT)
    if tenant_id is None or session.info.get(_UNSCOPED):
        return None
    obj = session.identity_map.get(session.identity_key(model, object_id))
    if obj is None or obj in session.deleted:
        return None
    state = inspect(obj)
    if not state.persistent or state.expired_attributes:
        return None
    if isinstance(obj, TenantOwned) and obj.tenant_id != tenant_id:
        return None
    return obj  # type: ignore[return-value]


@contextmanager
def unscoped(session: Session, reason: str) -> Iterator[Session]:
    """Run cross-tenant queries on purpose. ``reason`` documents why, at the call site."""
    if not reason:
        raise ValueError("unscoped() needs a reason")
    previous = session.info.get(_UNSCOPED)
    session.info[_UNSCOPED] = reason
    try:
        yield session
    finally:
        if previous is None:
            session.info.pop(_UNSCOPED, None)
        else:
            session.info[_UNSCOPED] = previous


def _touches_tenant_owned(state: ORMExecuteState) -> bool:
    return any(issubclass(m.class_, TenantOwned) for m in state.all_mappers)


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    session = state.session
    if session.info.get(_UNSCOPED):
        return
    tenant_id = session.info.get(_TENANT)
    if tenant_id is None:
        if state.is_column_load or state.is_relationship_load:
            # Loads triggered by an object already fetched under a tenant still get the criterion
            # below when a tenant is bound; with none bound they are as unsafe as any other query.
            pass
        if _touches_tenant_owned(state):
            raise TenantScopeError(
                "query on a tenant-owned model with no tenant bound to the session; "
                "call bind_tenant() or use unscoped(session, reason)"
            )
        return
    state.statement = _scoped_statement(state.statement, tenant_id)


@functools.lru_cache(maxsize=4096)
def _tenant_criteria(tenant_id: int) -> Any:
    """The criterion option of one tenant (its id is the lambda's closure value, bound per query)."""
    return with_loader_criteria(
        TenantOwned,
        lambda cls: cls.tenant_id == tenant_id,
        include_aliases=True,
        track_closure_variables=False,
    )


# Statements are immutable: one built once (a module constant) is scoped once per tenant, and keeps
# the SQL cache key SQLAlchemy memoizes on it, instead of being copied and keyed again on every call.
_SCOPED: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()
_TENANTS_PER_STATEMENT = 256  # a bound on the copies kept of one statement


def _scoped_statement(statement: Any, tenant_id: int) -> Any:
    per_tenant = _SCOPED.get(statement)
    if per_tenant is None:
        per_tenant = _SCOPED.setdefault(statement, {})
    scoped = per_tenant.get(tenant_id)
    if scoped is None:
        if len(per_tenant) >= _TENANTS_PER_STATEMENT:
            per_tenant.clear()
        scoped = per_tenant[tenant_id] = statement.options(_tenant_criteria(tenant_id))
    return scoped


def _before_flush(session: Session, _ctx, _instances) -> None:  # type: ignore[no-untyped-def]
    tenant_id = session.info.get(_TENANT)
    unscoped_reason = session.info.get(_UNSCOPED)
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if obj.tenant_id is None:
            if tenant_id is None:
                raise TenantScopeError(f"new {type(obj).__name__} with no tenant bound to the session")
            obj.tenant_id = tenant_id
        elif tenant_id is not None and obj.tenant_id != tenant_id and not unscoped_reason:
            raise TenantScopeError(
                f"new {type(obj).__name__} for tenant {obj.tenant_id} in a session bound to {tenant_id}"
            )
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, TenantOwned) and tenant_id is not None and obj.tenant_id != tenant_id and not unscoped_reason:
            raise TenantScopeError(f"{type(obj).__name__} of another tenant changed in this session")


_installed = False


def install() -> None:
    """Register the hooks on every Session (idempotent)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "before_flush", _before_flush)
    _installed = True


install()

"""Every tenant-owned model: another tenant's rows are invisible, unreachable and untouchable."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from conftest import make_tenant
from isolation.factories import FACTORIES
from workspace.db.base import Base, TenantOwned
from workspace.db.registry import load_models
from workspace.tenancy.errors import NotFound
from workspace.tenancy.repositories import fetch
from workspace.tenancy.scoping import TenantScopeError, bind_tenant, unscoped

load_models()
TENANT_OWNED = sorted(
    (m.class_ for m in Base.registry.mappers if issubclass(m.class_, TenantOwned)), key=lambda c: c.__name__
)


def test_every_model_has_a_factory():
    missing = [cls.__name__ for cls in TENANT_OWNED if cls not in FACTORIES]
    assert not missing, f"add isolation factories for: {missing}"
    assert len(TENANT_OWNED) >= 9


@pytest.fixture
def two_tenants(runtime):  # type: ignore[no-untyped-def]
    a = make_tenant(runtime, "alpha")
    b = make_tenant(runtime, "bravo")
    return a, b


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda c: c.__name__)
def test_other_tenants_rows_are_invisible(runtime, two_tenants, model):
    a, b = two_tenants
    with runtime.unit_of_work(b.tenant_id) as db:
        b_id = FACTORIES[model](db, "bravo-secret").id
    with runtime.unit_of_work(a.tenant_id) as db:
        a_id = FACTORIES[model](db, "alpha").id
    with runtime.unit_of_work(a.tenant_id) as db:
        rows = list(db.scalars(select(model)).unique())
        assert a_id in {r.id for r in rows}
        assert b_id not in {r.id for r in rows}
        assert {r.tenant_id for r in rows} == {a.tenant_id}
        assert db.scalar(select(func.count()).select_from(model).where(model.id == b_id)) == 0
        with pytest.raises(NotFound):
            fetch(db, model, b_id)
        # A missing id and a foreign id are indistinguishable.
        with pytest.raises(NotFound) as missing:
            fetch(db, model, 10_000_000)
        with pytest.raises(NotFound) as foreign:
            fetch(db, model, b_id)
        assert str(missing.value) == str(foreign.value)


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda c: c.__name__)
def test_bulk_statements_never_reach_other_tenants(runtime, two_tenants, model):
    a, b = two_tenants
    with runtime.unit_of_work(b.tenant_id) as db:
        b_id = FACTORIES[model](db, "bravo").id
    with runtime.unit_of_work(a.tenant_id) as db:
        result = db.execute(delete(model).where(model.id == b_id))
        assert result.rowcount == 0
    with runtime.unit_of_work(b.tenant_id) as db:
        assert db.scalar(select(func.count()).select_from(model).where(model.id == b_id)) == 1


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda c: c.__name__)
def test_query_without_tenant_fails_closed(runtime, model):
    session = runtime.session_factory()
    try:
        with pytest.raises(TenantScopeError):
            session.execute(select(model))
        with pytest.raises(TenantScopeError):
            session.execute(delete(model).where(model.id == 1))
        with unscoped(session, "the test proves the escape hatch is explicit"):
            session.execute(select(model))
    finally:
        session.rollback()
        session.close()


def test_inserts_are_stamped_and_foreign_inserts_refused(runtime, two_tenants):
    from workspace.tenancy.models import Team

    a, b = two_tenants
    with runtime.unit_of_work(a.tenant_id) as db:
        team = Team(name="stamped")
        db.add(team)
        db.flush()
        assert team.tenant_id == a.tenant_id
    session = runtime.session_factory()
    bind_tenant(session, a.tenant_id)
    try:
        session.add(Team(name="smuggled", tenant_id=b.tenant_id))
        with pytest.raises(TenantScopeError):
            session.flush()
    finally:
        session.rollback()
        session.close()


def test_session_cannot_switch_tenant(runtime, two_tenants):
    a, b = two_tenants
    session = runtime.session_factory()
    try:
        bind_tenant(session, a.tenant_id)
        with pytest.raises(TenantScopeError):
            bind_tenant(session, b.tenant_id)
    finally:
        session.close()


def test_core_prediction_lookup_is_scoped(runtime, two_tenants):
    """The prediction API's Core lookup (it bypasses the ORM hook) names the tenant itself: another
    tenant's task is missing, and with no tenant bound it refuses to run."""
    from workspace.lsapi.services import prediction_target
    from workspace.workflow.models import Task

    a, b = two_tenants
    with runtime.unit_of_work(b.tenant_id) as db:
        b_task = FACTORIES[Task](db, "bravo")
        b_id, b_data = b_task.id, b_task.data
    with runtime.unit_of_work(b.tenant_id) as db:
        assert prediction_target(db, b_id).data == b_data
    with runtime.unit_of_work(a.tenant_id) as db:
        with pytest.raises(NotFound):
            prediction_target(db, b_id)
    session = runtime.session_factory()
    try:
        with pytest.raises(TenantScopeError):
            prediction_target(session, b_id)
    finally:
        session.rollback()
        session.close()

"""The codebase keeps ARCHITECTURE.md's rules: layer direction, one migration head, declared routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workspace.config import REPO_ROOT


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_single_migration_head():
    from workspace.db.migrate import heads

    assert len(heads()) == 1, f"alembic has several heads: {heads()}"


def test_models_match_migrations(tmp_path):
    """Autogenerate against a migrated database finds nothing to do: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from workspace.db import make_engine
    from workspace.db.migrate import upgrade
    from workspace.db.registry import load_models

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), load_models().metadata)
    engine.dispose()
    assert diff == [], diff


def test_no_route_handler_without_declared_access(tmp_path):
    """Every route declares PUBLIC, SIGNED_IN or a permission; the guard refuses the rest."""
    from workspace.app import create_app
    from workspace.config import load_settings
    from workspace.web.guards import ACCESS_KEY

    settings = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path), "WORKSPACE_SECRET_KEY": "k" * 40})
    app = create_app(settings)
    missing = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods == {"OPTIONS"}:
                continue
            if not handler.opt.get(ACCESS_KEY):
                missing.append(f"{sorted(handler.http_methods)} {route.path}")
    assert missing == [], f"routes without declared access: {missing}"


def test_undeclared_route_fails_closed(app):
    """A handler that forgets to declare access answers 500 (configuration error), never 200."""
    from litestar import get
    from litestar.testing import TestClient

    @get("/t/{slug:str}/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "secret"

    app.register(forgotten)
    with TestClient(app) as c:
        response = c.get("/t/acme/forgotten")
    assert response.status_code == 500
    assert "secret" not in response.text

"""Import every model module so that Base.metadata is complete (alembic, tests, create_all)."""

from __future__ import annotations

import importlib

from workspace.db.base import Base

__all__ = ["MODEL_MODULES", "load_models"]

MODEL_MODULES = ("workspace.tenancy.models", "workspace.workflow.models", "workspace.audit.models",
                 "workspace.jobs.models", "workspace.webhooks.models",
                 "workspace.ml.models", "workspace.workflow.review_models",
                 "workspace.workflow.comments", "workspace.notifications.models")


def load_models() -> type[Base]:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base

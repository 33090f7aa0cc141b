"""Composition root: ``create_app(settings)``."""

from workspace.app.factory import StartupError, create_app

__all__ = ["create_app", "StartupError"]

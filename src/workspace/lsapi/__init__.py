"""A Label Studio–compatible REST API that the official ``label-studio-sdk`` drives unchanged."""

from workspace.lsapi.routes import route_handlers

__all__ = ["route_handlers"]

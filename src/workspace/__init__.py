"""Workspace: a multi-tenant, enterprise data-labeling platform."""

__version__ = "0.1.0"

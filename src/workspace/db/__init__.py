"""Engine, sessions, declarative base and mixins. SQLite pragmas live here."""

from workspace.db.base import Base, TenantOwned, Timestamped
from workspace.db.engine import make_engine, make_session_factory

__all__ = ["Base", "TenantOwned", "Timestamped", "make_engine", "make_session_factory"]

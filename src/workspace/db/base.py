"""Declarative base and the mixins every model builds on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from workspace.lib.timeutil import utcnow

__all__ = ["Base", "TenantOwned", "Timestamped", "Audited"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class TenantOwned:
    """A row that belongs to one tenant.

    Every ORM query on such a model gets the session's tenant criterion added, and raises when the
    session has no tenant (``workspace.tenancy.scoping``). ``tenant_id`` is stamped on insert.
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:  # noqa: N805
        return mapped_column(
            Integer, ForeignKey("tenant.id", ondelete="CASCADE"), index=True, nullable=False
        )


class Audited:
    """Changes to rows of this model are written to the audit chain by the flush hook.

    ``__audit_type__`` names the object type in events; ``__audit_exclude__`` lists columns never
    recorded (secrets, hashes); ``__audit_label__`` is the attribute describing the row.
    """

    __audit_type__: str = ""
    __audit_exclude__: frozenset[str] = frozenset()

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        """The action's verb: "created", "updated", "deleted", or a more telling one for an update."""
        return verb

    def audit_changes(self, changes: dict[str, list[object]]) -> dict[str, list[object]]:
        """What the event records of the changes (``{column: [old, new]}``); a model may shorten
        bulky values, e.g. to a digest."""
        return changes

    def audit_label(self) -> str:
        for attr in ("email", "name", "slug", "title", "key"):
            value = getattr(self, attr, None)
            if isinstance(value, str) and value:
                return value
        return ""

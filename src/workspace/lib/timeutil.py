"""Time helpers: the app stores and compares UTC."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utcnow", "as_utc"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)

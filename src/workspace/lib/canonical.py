"""Canonical JSON: the byte form that the audit chain hashes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

__all__ = ["canonical_json", "iso_utc"]


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds; naive datetimes are taken as UTC (SQLite returns them)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default, allow_nan=False
    ).encode("utf-8")

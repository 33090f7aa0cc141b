"""Small helpers for url-encoded form bodies (Litestar hands repeated keys over as lists)."""

from __future__ import annotations

from typing import Any

from workspace.tenancy.errors import Invalid

__all__ = ["one", "many", "int_or_none"]


def one(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if isinstance(value, list):
        value = value[-1] if value else default
    return str(value).strip() if value is not None else default


def many(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [str(value)]


def int_or_none(value: str, *, field: str) -> int | None:
    if value in ("", None):
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid("Enter a whole number.", field=field) from None

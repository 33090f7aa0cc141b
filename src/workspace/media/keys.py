"""Tenant ids, keys and prefixes: validated here, joined here, nowhere else.

The full object key is always ``f"{tenant_id}/{key}"``. Callers pass the tenant id and a key
*relative to the tenant*; the store adds the prefix, so one tenant can't name another's objects.

A key is one or more ``/``-separated segments. Each segment starts with a letter, digit or ``_``
and continues with letters, digits and ``. _ - + = @ , ( ) ~``. So there is no ``..`` or ``.``
segment, no leading or trailing ``/``, no ``//``, no backslash, no NUL, no space or ``%?#``.
Segments that start with ``.`` are reserved for the store's own files (temp files, metadata).
"""

from __future__ import annotations

import re

from workspace.media.errors import MediaKeyError

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "object_key",
    "object_prefix",
    "tenant_segment",
    "validate_key",
    "validate_prefix",
]

MAX_KEY_BYTES = 512
MAX_SEGMENT_BYTES = 200  # leaves room for the store's ".<name>.<random>.tmp" files under NAME_MAX (255)

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-+=@,()~]*")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def tenant_segment(tenant_id: int | str) -> str:
    """The first path segment for a tenant: a positive int, or a short id of ``[A-Za-z0-9_-]``."""
    if isinstance(tenant_id, bool) or not isinstance(tenant_id, (int, str)):
        raise MediaKeyError(f"invalid tenant id {tenant_id!r}: must be a positive int or an id string")
    if isinstance(tenant_id, int):
        if tenant_id <= 0:
            raise MediaKeyError(f"invalid tenant id {tenant_id!r}: must be positive")
        return str(tenant_id)
    if not _TENANT.fullmatch(tenant_id):
        raise MediaKeyError(f"invalid tenant id {tenant_id!r}: use 1-63 characters of A-Z a-z 0-9 _ -")
    return tenant_id


def _check_segments(kind: str, value: str, segments: list[str]) -> None:
    for segment in segments:
        if segment == "":
            raise MediaKeyError(f"invalid media {kind} {value!r}: empty path segment ('//' or a leading '/')")
        if segment in {".", ".."}:
            raise MediaKeyError(f"invalid media {kind} {value!r}: '{segment}' path segments are not allowed")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise MediaKeyError(f"invalid media {kind} {value!r}: a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        if not _SEGMENT.fullmatch(segment):
            raise MediaKeyError(
                f"invalid media {kind} {value!r}: segment {segment!r} must start with a letter, digit or '_' "
                "and use only letters, digits and . _ - + = @ , ( ) ~"
            )


def _check_common(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise MediaKeyError(f"invalid media {kind} {value!r}: must be a string")
    if "\x00" in value:
        raise MediaKeyError(f"invalid media {kind} {value!r}: contains a NUL byte")
    if "\\" in value:
        raise MediaKeyError(f"invalid media {kind} {value!r}: contains a backslash")
    if value.startswith("/"):
        raise MediaKeyError(f"invalid media {kind} {value!r}: must not start with '/' (keys are relative to the tenant)")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise MediaKeyError(f"invalid media {kind}: longer than {MAX_KEY_BYTES} bytes")
    return value


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid key, else raise ``MediaKeyError``."""
    _check_common("key", key)
    if key == "":
        raise MediaKeyError("invalid media key '': must not be empty")
    if key.endswith("/"):
        raise MediaKeyError(f"invalid media key {key!r}: must not end with '/'")
    _check_segments("key", key, key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """A prefix is ``""`` (everything of the tenant) or a key, optionally ending with one ``/``."""
    _check_common("prefix", prefix)
    if prefix == "":
        return prefix
    body = prefix.removesuffix("/")
    if body == "":
        raise MediaKeyError("invalid media prefix '/': use '' for all of a tenant's objects")
    _check_segments("prefix", prefix, body.split("/"))
    return prefix


def object_key(tenant_id: int | str, key: str) -> str:
    """The full object key: ``"<tenant>/<key>"``."""
    return f"{tenant_segment(tenant_id)}/{validate_key(key)}"


def object_prefix(tenant_id: int | str, prefix: str) -> str:
    """The full object-key prefix: ``"<tenant>/<prefix>"`` (always inside the tenant's folder)."""
    return f"{tenant_segment(tenant_id)}/{validate_prefix(prefix)}"

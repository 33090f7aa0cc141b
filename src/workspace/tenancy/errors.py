"""Service errors; the web layer maps them to status codes and messages next to the field."""

from __future__ import annotations

__all__ = ["ServiceError", "NotFound", "Forbidden", "Invalid", "Conflict"]


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404

    def __init__(self, what: str = "Not found") -> None:
        super().__init__(what)


class Forbidden(ServiceError):
    status = 403


class Invalid(ServiceError):
    status = 400


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    """A size or count limit was passed."""

    status = 413

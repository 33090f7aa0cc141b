"""Exception handlers: readable pages for people, JSON for the API, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError

from workspace.tenancy.errors import ServiceError
from workspace.web.guards import LoginRequired, is_api

__all__ = ["exception_handlers"]

log = logging.getLogger(__name__)

TITLES = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
          409: "Conflict", 413: "Too large", 422: "Check the form", 429: "Too many requests", 500: "Something broke"}


def _error(request: Request[Any, Any, Any], status: int, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> Response[Any]:
    if is_api(request) or "application/json" in (request.headers.get("accept") or "") and "text/html" not in (
        request.headers.get("accept") or ""
    ):
        body: dict[str, Any] = {"detail": message}
        if field:
            body["field"] = field
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    htmx = request.headers.get("hx-request") == "true"
    template = "errors/_error.html" if htmx else "errors/error.html"
    return Template(
        template_name=template,
        context={"request": request, "status": status, "title": TITLES.get(status, "Error"), "message": message,
                 "ctx": None, "can": {}, "tenants": [], "current_user": None, "nav": None},
        status_code=status,
        headers=headers,
    )


def _service_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    return _error(request, exc.status, exc.message, exc.field)


def _login_required(request: Request[Any, Any, Any], _exc: LoginRequired) -> Response[Any]:
    target = "/login?next=" + quote(request.url.path)
    if request.headers.get("hx-request") == "true":
        return Response(None, status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException):
        return _error(request, 401, exc.detail or "Invalid token.", headers={"WWW-Authenticate": "Token"})
    status = exc.status_code
    if status == 404:
        message = "There is nothing here. Check the address, or go back to the home page."
    elif status >= 500:
        message = "The server could not complete the request."
    else:
        message = exc.detail or TITLES.get(status, "Error")
    return _error(request, status, message, headers=getattr(exc, "headers", None))


INT64_MAX = 2**63 - 1


def _out_of_range(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A whole number past the database's 64-bit integers (SQLite's OverflowError, PostgreSQL's "out of
    range"): no object has such an id (404), or the parameter is wrong (400), never a 500."""
    if not isinstance(exc, OverflowError) and "out of range" not in str(exc):
        return _unexpected(request, exc)
    if any(isinstance(v, int) and not -INT64_MAX - 1 <= v <= INT64_MAX for v in request.path_params.values()):
        return _error(request, 404, "There is nothing here. Check the address, or go back to the home page.")
    return _error(request, 400, f"A number in the request is out of range: use whole numbers up to {INT64_MAX}.")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, HTTP_500_INTERNAL_SERVER_ERROR,
                  "The server hit an unexpected error; nothing was changed. Try again, or tell your admin.")


exception_handlers = {
    ServiceError: _service_error,
    LoginRequired: _login_required,
    HTTPException: _http_exception,
    OverflowError: _out_of_range,
    DataError: _out_of_range,
    Exception: _unexpected,
}

"""Serving media to the browser, only through short-lived signed URLs (local backend).

``GET /media/<tenant>/<key>?exp=…&disp=…&sig=…`` is what ``LocalMediaStore.url_for`` produces. The
route is PUBLIC because the HMAC signature (over tenant, key, expiry, disposition and download name)
is the credential: an unsigned, tampered, expired or re-targeted URL (another tenant, another key)
answers 403, a missing object 404. The response carries the stored (sniffed) type for allowlisted
media only, ``X-Content-Type-Options: nosniff``, an attachment disposition for anything else, a
sandboxing CSP and ``Cache-Control: private``. On S3 the browser gets presigned bucket URLs instead
and this route answers 404.

The path has one ``{path:path}`` parameter (no ``*_id`` parameters: the tenant is part of the signed
path, not a looked-up id).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Stream

from workspace.media import MediaError, MediaNotFound
from workspace.media.local import LocalMediaStore
from workspace.web.blocking import in_thread
from workspace.web.guards import PUBLIC, requires
from workspace.web.uow import runtime_of

CHUNK = 256 * 1024


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    remaining = size
    with open(path, "rb") as f:
        while remaining > 0:
            data = f.read(min(CHUNK, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data


@get("/media/{path:path}", opt=requires(PUBLIC), name="media_signed")
@in_thread
def serve_media(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
    store = runtime_of(request).media
    if not isinstance(store, LocalMediaStore):
        raise NotFoundException("Not found")
    tenant, _, key = path.lstrip("/").partition("/")
    query = {name: request.query_params.get(name) for name in ("exp", "sig", "disp", "name")}
    if not tenant or not key or not query["exp"] or not query["sig"]:
        raise NotFoundException("Not found")
    try:
        signed = store.resolve_signed(tenant, key, {k: v for k, v in query.items() if v is not None})
    except (MediaNotFound, MediaError):
        raise NotFoundException("Not found") from None
    if signed is None:
        raise PermissionDeniedException("This media link is invalid or has expired; reload the page for a new one.")
    headers = dict(signed.headers)
    headers.pop("Content-Type", None)
    headers["Content-Length"] = str(signed.size)
    if signed.etag:
        headers["ETag"] = f'"{signed.etag}"'
    return Stream(_chunks(signed.path, signed.size), media_type=signed.content_type, headers=headers)


route_handlers = [serve_media]

"""One OpenAPI document for the JSON API (``/schema/openapi.json``) and its docs page (``/schema``).

The document covers every ``/api/`` route: the Label Studio–compatible API and Workspace's own
(``/api/ws/...``); HTML pages stay out of it (:func:`layout`). Both token styles are declared as
security schemes. The docs page is Swagger UI from the pinned npm package ``swagger-ui-dist``
(``build/package.json``), served by the app itself under ``/vendor/swagger-ui/``, started by our own
``static/api_docs.js``: no inline script, no CDN, so it renders offline under the app's strict CSP.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.static_files import create_static_files_router

from workspace.config import Settings
from workspace.web.guards import PUBLIC, requires

__all__ = ["openapi_config", "layout", "docs_assets_router", "SCHEMA_PATH", "DOCS_ASSETS"]

SCHEMA_PATH = "/schema"
DOCS_ASSETS = "/vendor/swagger-ui"
LS_TAG = "Label Studio–compatible API"

DESCRIPTION = """\
The JSON API of Workspace.

* **Label Studio–compatible API** (`/api/projects/`, `/api/tasks/`, ...): the subset of Label Studio's REST
  API that the official `label-studio-sdk` uses, with its paths, parameters and shapes.
* **Workspace API** (`/api/ws/...`): members, invitations, teams, roles, jobs, reviews and the audit log.

Authenticate with an API key of a member (`Authorization: Token <key>`, made on the *API tokens* page) or
with a short-lived access JWT (`Authorization: Bearer <jwt>`) exchanged for a personal access token at
`POST /api/token/refresh/`. A key belongs to one member of one tenant: every call is scoped to that
tenant and checked against that member's role (403 without the permission; another tenant's object
answers 404, like a missing one).
"""

TAGS = [
    Tag(name=LS_TAG, description="The Label Studio REST subset that `label-studio-sdk` drives unchanged."),
    Tag(name="Workspace: members, teams and roles", description="The tenant, its members, invitations, teams, roles."),
    Tag(name="Workspace: jobs", description="Background jobs of a project (imports, exports, ...)."),
    Tag(name="Workspace: reviews", description="Review verdicts and the review queue of a project."),
    Tag(name="Workspace: audit", description="The tenant's append-only, hash-chained audit log."),
    Tag(name="Workspace: API tokens", description="API keys of the tenant's members."),
    Tag(name="Workspace: projects", description="Workspace's own settings of a project (workflow)."),
]


# Tags of the API handlers that declare none, by path prefix.
UNTAGGED = [("/api/ws/audit", "Workspace: audit"), ("/api/ws/tokens", "Workspace: API tokens"),
            ("/api/ws/", "Workspace: members, teams and roles"), ("/api/projects/", "Workspace: projects")]


def _swagger_dir(settings: Settings) -> Path:
    """``swagger-ui-dist`` sits beside htmx in the setup step's ``node_modules``."""
    return settings.htmx_path.parents[2] / "swagger-ui-dist"


class LocalSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI from the app's own files; the page carries no inline script or style."""

    def __init__(self, available: bool) -> None:
        super().__init__(path=["/", "/docs"])
        self.available = available

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        if not self.available:
            body = ("<main class=\"docs-missing\"><h1>API documentation</h1><p>The docs page's assets are not "
                    "installed: run the setup step (<code>npm ci --prefix build</code>). The document itself is at "
                    f"<a href=\"{SCHEMA_PATH}/openapi.json\">{SCHEMA_PATH}/openapi.json</a>.</p></main>")
            head = ""
        else:
            head = f'<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">'
            body = (f'<div id="swagger-ui" data-schema-url="{SCHEMA_PATH}/openapi.json"></div>'
                    f'<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>'
                    '<script src="/static/api_docs.js"></script>')
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} — API docs</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}</head>'
                f"<body>{body}</body></html>").encode()


def openapi_config(settings: Settings, version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Workspace API",
        version=version,
        description=DESCRIPTION,
        path=SCHEMA_PATH,
        tags=TAGS,
        components=Components(security_schemes={
            "Token": SecurityScheme(
                type="apiKey", name="Authorization", security_scheme_in="header",
                description="An API key: send `Authorization: Token <key>` (enter `Token <key>` here).",
            ),
            "Bearer": SecurityScheme(
                type="http", scheme="bearer", bearer_format="JWT",
                description="A short-lived access JWT from `POST /api/token/refresh/` (personal access tokens).",
            ),
        }),
        security=[{"Token": []}, {"Bearer": []}],
        render_plugins=[LocalSwaggerPlugin(available=(_swagger_dir(settings) / "swagger-ui-bundle.js").is_file())],
        openapi_router=Router(SCHEMA_PATH, route_handlers=[], include_in_schema=False, opt=requires(PUBLIC)),
    )


def docs_assets_router(settings: Settings) -> Router:
    return create_static_files_router(
        path=DOCS_ASSETS, directories=[_swagger_dir(settings)], opt=requires(PUBLIC), name="vendor_swagger_ui",
        cache_control=CacheControlHeader(max_age=86400),
    )


def _is_api(handler: Any) -> bool:
    return isinstance(handler, HTTPRouteHandler) and all(p.startswith("/api/") for p in handler.paths)


def layout(handlers: list[Any]) -> list[Any]:
    """The app's handlers with the HTML pages (and static files) in a router left out of the schema, the
    Label Studio–compatible API's router under its tag, and untagged API handlers tagged by path.
    Handlers are not changed: the wrapping routers carry both settings."""
    api, pages, ls_api = [], [], []
    untagged: dict[str, list[Any]] = {}
    for handler in handlers:
        if isinstance(handler, Router):
            routes = handler.routes
            is_ls = bool(routes) and all(r.path.startswith("/api/") for r in routes)
            (ls_api if is_ls else pages).append(handler)
        elif not _is_api(handler):
            pages.append(handler)
        elif handler.tags:
            api.append(handler)
        else:
            untagged.setdefault(_tag_of(handler), []).append(handler)
    return [*api, *(Router(path="/", route_handlers=hs, tags=[tag]) for tag, hs in untagged.items()),
            Router(path="/", route_handlers=ls_api, tags=[LS_TAG]),
            Router(path="/", route_handlers=pages, include_in_schema=False)]


def _tag_of(handler: HTTPRouteHandler) -> str:
    path = sorted(handler.paths)[0]
    for prefix, tag in UNTAGGED:
        if path.startswith(prefix):
            return tag
    return "Workspace"

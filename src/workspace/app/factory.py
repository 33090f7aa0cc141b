"""Build the Litestar application from settings. Features export ``route_handlers``; this collects them."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.datastructures import CacheControlHeader, MutableScopeHeaders
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.static_files import create_static_files_router
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from workspace import lsapi
from workspace.app import openapi as api_docs
from workspace.audit import api as audit_api
from workspace.audit import routes as audit_routes
from workspace.config import Settings
from workspace.runtime import Runtime, build_runtime
from workspace.tenancy import routes as tenancy_routes
from workspace.web.errors import exception_handlers
from workspace.web.guards import PUBLIC, authorize, requires
from workspace.web.markdown import render_markdown
from workspace.web.sessions import RotatingSessionConfig
from workspace.web.throttle import LoginThrottle
from workspace.web.uow import STATE_DB, finish_session
from workspace.workflow import routes as workflow_routes

__all__ = ["create_app", "StartupError"]

FEATURES = (tenancy_routes, workflow_routes, audit_routes, audit_api, lsapi)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
]


def content_security_policy(settings: Settings) -> str:
    """Strict CSP; media may also come from the S3 endpoint, whose presigned URLs browsers load directly."""
    media = "'self' data:"
    if settings.s3 is not None:
        endpoint = settings.s3.public_endpoint or settings.s3.endpoint
        if "://" not in endpoint:
            endpoint = ("https://" if settings.s3.secure else "http://") + endpoint
        media += " " + endpoint.rstrip("/")
    return (f"default-src 'self'; img-src {media}; media-src {media}; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


CSP_FALLBACK = "default-src 'self'; frame-ancestors 'none'"


class StartupError(RuntimeError):
    """The app can't start as configured; the message says what to do."""


@get("/healthz", opt=requires(PUBLIC), name="health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Request id (from a well-formed ``X-Request-ID`` or new), read by the audit trail; rolls back a
    request's database session if its response never started (client gone)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        scope.setdefault("state", {})["request_id"] = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        try:
            await app(scope, receive, send)
        finally:
            leftover = scope.get("state", {}).pop(STATE_DB, None)
            if leftover is not None:
                leftover.rollback()
                leftover.close()

    return middleware


async def security_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: runs for every response, unmatched routes (404) included."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    state = scope.setdefault("state", {})
    headers["x-request-id"] = state.setdefault("request_id", uuid.uuid4().hex)
    for key, value in SECURITY_HEADERS:
        if key not in headers:
            headers[key] = value
    if "content-security-policy" not in headers:
        headers["content-security-policy"] = scope["app"].state.get("csp") or CSP_FALLBACK


def _stores(settings: Settings) -> dict[str, Store]:
    if settings.redis_url:
        root = RedisStore.with_client(url=settings.redis_url, namespace="workspace")
        return {"sessions": root.with_namespace("sessions"), "throttle": root.with_namespace("throttle")}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {"sessions": FileStore(settings.data_dir / "sessions", create_directories=True), "throttle": MemoryStore()}


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Litestar:
    if not settings.htmx_path.is_file():
        raise StartupError(
            f"htmx is missing (looked for {settings.htmx_path}). Run the setup step: "
            "`npm ci --prefix build` (see README), or set WORKSPACE_HTMX_PATH."
        )
    if not settings.template_dir.is_dir():
        raise StartupError(f"templates folder not found at {settings.template_dir}")
    owns_runtime = runtime is None
    runtime = runtime or build_runtime(settings)
    stores = _stores(settings)
    template_config = TemplateConfig(directory=settings.template_dir, engine=JinjaTemplateEngine)
    static = create_static_files_router(
        path="/static", directories=[settings.static_dir], opt=requires(PUBLIC), name="static",
        cache_control=CacheControlHeader(max_age=3600),
    )
    vendor = create_static_files_router(
        path="/vendor/htmx", directories=[settings.htmx_path.parent], opt=requires(PUBLIC), name="vendor_htmx",
        cache_control=CacheControlHeader(max_age=86400),
    )
    handlers: list[Any] = [health, static, vendor, api_docs.docs_assets_router(settings)]
    for feature in FEATURES:
        handlers.extend(feature.route_handlers)

    app = Litestar(
        route_handlers=api_docs.layout(handlers),  # HTML pages stay out of the OpenAPI document
        guards=[authorize],
        middleware=[request_context_middleware,
                    RotatingSessionConfig(store="sessions", key="ws_session", exclude=["^/api/", "^/static/",
                                          "^/vendor/", "^/healthz"], max_age=settings.session_max_age,
                                          secure=settings.cookie_secure, samesite="lax").middleware],
        csrf_config=CSRFConfig(secret=settings.secret_key, cookie_name="ws_csrf", cookie_secure=settings.cookie_secure,
                               exclude=["^/api/"], cookie_samesite="lax"),
        template_config=template_config,
        plugins=[FlashPlugin(config=FlashConfig(template_config=template_config))],
        stores=stores,
        before_send=[security_headers, finish_session],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        openapi_config=api_docs.openapi_config(settings, __import__("workspace").__version__),
        debug=settings.debug,
        # Embedded mode runs jobs in this process; production runs them in `workspace worker`.
        on_startup=[lambda: runtime.jobs.start_worker()] if settings.embedded else [],
        on_shutdown=[lambda: runtime.jobs.stop_worker(), *([runtime.close] if owns_runtime else [])],
        request_max_body_size=64 * 1024 * 1024,
    )
    app.state["runtime"] = runtime
    app.state["csp"] = content_security_policy(settings)
    app.state["settings"] = settings
    app.state["throttle"] = LoginThrottle(
        stores["throttle"], max_failures=settings.login_max_failures, window=settings.login_window_seconds
    )
    env = template_config.engine_instance.engine
    env.globals["workspace_version"] = __import__("workspace").__version__
    env.filters["markdown"] = render_markdown
    env.autoescape = True
    return app

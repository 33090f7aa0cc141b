"""The ``workspace`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import func, select, text

from workspace.config import Settings, SettingsError, load_settings

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.example"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise SystemExit(f"workspace: {exc}") from None


def _runtime(settings: Settings, *, watch_policy: bool = False):  # type: ignore[no-untyped-def]
    from workspace.runtime import build_runtime

    return build_runtime(settings, watch_policy=watch_policy)


MIGRATION_LOCK = 0x776F726B7370  # PostgreSQL advisory lock key: one process migrates/seeds at a time


@contextmanager
def _migration_lock(engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Serialize schema upgrades and demo seeding among processes starting together on PostgreSQL.

    Without it, two ``serve`` processes started at once on an empty database both run the migrations
    and one dies on duplicate DDL (or on the demo tenant's unique slug). On SQLite each step already
    runs under the database's write lock (``BEGIN IMMEDIATE``).
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})


def cmd_migrate(args: argparse.Namespace) -> int:
    from workspace.db.migrate import upgrade

    settings = _settings()
    runtime = _runtime(settings)
    try:
        with _migration_lock(runtime.engine):
            upgrade(runtime.engine)
    finally:
        runtime.close()
    print("database is at the newest schema")
    return 0


def _ensure_demo(runtime) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    from workspace.tenancy.models import Tenant
    from workspace.tenancy.services import create_tenant

    with runtime.unit_of_work() as db:
        if db.scalar(select(func.count()).select_from(Tenant)):
            return None
        _tenant, _user, password = create_tenant(db, DEMO_SLUG, "Demo Organization", DEMO_EMAIL, None,
                                                owner_name="Demo Owner")
    creds = runtime.settings.data_dir / "demo-credentials.txt"
    if runtime.settings.is_sqlite:
        creds.write_text(f"e-mail: {DEMO_EMAIL}\npassword: {password}\n")
        creds.chmod(0o600)
    return DEMO_EMAIL, password or ""


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from workspace.app import StartupError, create_app
    from workspace.db.migrate import upgrade

    settings = _settings()
    if not os.environ.get("WORKSPACE_PUBLIC_URL"):
        # Invitation links point at the address actually served unless an explicit one is set.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        settings = replace(settings, public_url=f"http://{host}:{args.port}")
    runtime = _runtime(settings, watch_policy=True)
    with _migration_lock(runtime.engine):
        upgrade(runtime.engine)
        demo = _ensure_demo(runtime)
    try:
        app = create_app(settings, runtime=runtime)
    except StartupError as exc:
        raise SystemExit(f"workspace: {exc}") from None
    url = f"http://{args.host}:{args.port}/"
    print(f"Workspace is starting at {url}  ({'embedded' if settings.embedded else 'production'} mode)")
    if demo:
        print("A demo organization was created. Log in with:")
        print(f"  e-mail:   {demo[0]}")
        print(f"  password: {demo[1]}")
    elif settings.is_sqlite and (settings.data_dir / "demo-credentials.txt").exists():
        print(f"Demo login: see {settings.data_dir / 'demo-credentials.txt'}")
    sys.stdout.flush()
    trusted = os.environ.get("WORKSPACE_FORWARDED_ALLOW_IPS")
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=bool(trusted),
                forwarded_allow_ips=trusted or None, log_level="info", access_log=False)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workspace.jobs.worker import run_worker

    return run_worker(_settings(), processes=args.processes, threads=args.threads)


def cmd_create_tenant(args: argparse.Namespace) -> int:
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.errors import ServiceError
    from workspace.tenancy.services import create_tenant

    runtime = _runtime(_settings())
    try:
        with runtime.unit_of_work() as db:
            existing = repo.user_by_email(db, args.owner_email) is not None
            tenant, user, generated = create_tenant(db, args.slug, args.name, args.owner_email, args.owner_password)
    except ServiceError as exc:
        print(f"workspace: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
        return 2
    print(f"created tenant {tenant.slug} ({tenant.name}) owned by {user.email}")
    if generated:
        print(f"owner password: {generated}")
    if existing and args.owner_password is not None:
        # The account exists (it belongs to another tenant too): its password is not changed.
        print(f"note: {user.email} already had an account; --owner-password was ignored and its password kept")
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.errors import ServiceError
    from workspace.tenancy.scoping import bind_tenant
    from workspace.tenancy.services import create_api_token

    runtime = _runtime(_settings())
    with runtime.unit_of_work() as db:
        tenant = repo.tenant_by_slug(db, args.tenant.strip().lower())
        if tenant is None:
            print(f"workspace: no tenant {args.tenant!r}", file=sys.stderr)
            return 2
        bind_tenant(db, tenant.id)
        user = repo.user_by_email(db, args.email)
        membership = repo.membership_of(db, user.id) if user else None
        if user is None or membership is None or membership.status != "active" or not user.is_active:
            print(f"workspace: {args.email} is not an active member of {args.tenant}", file=sys.stderr)
            return 2
        try:
            minted = create_api_token(db, tenant.id, user.id, args.name, expires_days=args.expires_days)
        except ServiceError as exc:
            db.rollback()
            print(f"workspace: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
            return 2
    print(f"token {minted.token.prefix}… for {user.email} in {tenant.slug} (store it now; it is not shown again):")
    print(minted.key)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from workspace.audit.verify import verify_tenant
    from workspace.db.engine import readonly_engine
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.models import Tenant

    settings = _settings()
    runtime = _runtime(settings)
    broken = 0
    # Read-only: on SQLite it must not take the write lock for the whole walk while a server runs.
    db = runtime.session_factory(bind=readonly_engine(runtime.engine))
    try:
        if args.tenant:
            tenant = repo.tenant_by_slug(db, args.tenant.strip().lower())
            if tenant is None:
                print(f"workspace: no tenant {args.tenant!r}", file=sys.stderr)
                return 2
            tenants = [tenant]
        else:
            tenants = list(db.scalars(select(Tenant).order_by(Tenant.id)))
        for tenant in tenants:
            report = verify_tenant(db, settings.secret_key, tenant.id)
            if report.ok:
                print(f"{tenant.slug}: ok ({report.events} events)")
            else:
                broken += 1
                print(f"{tenant.slug}: BROKEN at seq {report.broken_seq}: {report.reason}")
    finally:
        db.rollback()
        db.close()
        runtime.close()
    if not tenants:
        print("no tenants: nothing to verify")
    return 1 if broken else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workspace", description="Workspace data-labeling platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="migrate, create a demo tenant on an empty database, and serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the background job worker (production mode)")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--threads", type=int, default=4)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="upgrade the database schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("create-tenant", help="create a tenant and its owner")
    p.add_argument("slug")
    p.add_argument("--name", required=True)
    p.add_argument("--owner-email", required=True)
    p.add_argument("--owner-password")
    p.set_defaults(func=cmd_create_tenant)

    p = sub.add_parser("create-token", help="print a new API token for a member (last line)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="CLI token")
    p.add_argument("--expires-days", type=int)
    p.set_defaults(func=cmd_create_token)

    p = sub.add_parser("audit", help="audit log tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="verify the audit chains (exit 1 when one is broken)")
    v.add_argument("--tenant")
    v.set_defaults(func=cmd_audit_verify)
    return parser


def _database_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    missing_schema = any(s in detail for s in ("no such table", "does not exist")) and "database" not in detail
    hint = " (is the schema there? run `workspace migrate`)" if missing_schema else ""
    return f"workspace: database error: {detail}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import DBAPIError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DBAPIError as exc:
        print(_database_error(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""Settings read from ``WORKSPACE_*`` environment variables.

No imports from the rest of workspace. Defaults are the embedded mode: SQLite, local media folder,
in-process jobs.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "SettingsError", "load_settings", "REPO_ROOT"]

# The checkout the package runs from (an editable install): templates/, static/ and build/ live here.
REPO_ROOT = Path(__file__).resolve().parents[3]


class SettingsError(ValueError):
    """A setting has a value that can't be used; the message names the variable."""


def _bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean; use true or false")


def normalize_database_url(url: str) -> str:
    """Map async driver names onto the sync drivers the app uses (one code path for web, jobs, CLI).

    ``postgresql+asyncpg://`` and ``postgresql://`` both become ``postgresql+psycopg://``;
    ``sqlite+aiosqlite://`` becomes ``sqlite://``.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url[len("sqlite+aiosqlite://"):]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise SettingsError(
        f"WORKSPACE_DATABASE_URL={url!r}: unsupported database; use postgresql+psycopg://, "
        "postgresql+asyncpg:// or sqlite:///path"
    )


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    secure: bool
    # Where browsers reach the storage, when not at ``endpoint`` (e.g. https://media.example.com behind
    # a proxy, while the servers talk to http://minio:9000): presigned URLs are signed for this host.
    public_endpoint: str | None = None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    redis_url: str | None = None
    s3: S3Settings | None = None
    static_dir: Path = field(default_factory=lambda: REPO_ROOT / "static")
    template_dir: Path = field(default_factory=lambda: REPO_ROOT / "templates")
    htmx_path: Path = field(
        default_factory=lambda: REPO_ROOT / "build" / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
    )
    public_url: str = "http://127.0.0.1:8000"
    session_max_age: int = 12 * 3600
    invitation_days: int = 7
    login_max_failures: int = 5
    login_window_seconds: int = 900
    cookie_secure: bool = False
    debug: bool = False
    # Task files larger than this are imported by a background job with a progress bar.
    import_job_bytes: int = 4 * 1024 * 1024
    max_import_bytes: int = 2 * 1024 * 1024 * 1024
    # Job broker (Redis): key namespace, and how soon a dead worker's message is handed to another.
    jobs_namespace: str = "workspace-jobs"
    jobs_redeliver_seconds: int = 30
    jobs_maintenance_per_million: int = 1000
    # Host names that jobs' outbound requests (webhooks, ML backends) may reach on loopback or private
    # addresses (WORKSPACE_OUTBOUND_ALLOWED_HOSTS, comma-separated); empty: only public addresses.
    outbound_allowed_hosts: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


def _secret_key(data_dir: Path, env_value: str | None, embedded: bool) -> str:
    if env_value:
        if len(env_value) < 32:
            raise SettingsError("WORKSPACE_SECRET_KEY must be at least 32 characters long")
        return env_value
    if not embedded:
        raise SettingsError(
            "WORKSPACE_SECRET_KEY is required in production mode (WORKSPACE_REDIS_URL is set): "
            "every web and worker process must share it"
        )
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from the environment (``os.environ`` when ``env`` is None)."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("WORKSPACE_DATA_DIR") or "./workspace-data").resolve()
    redis_url = env.get("WORKSPACE_REDIS_URL") or None
    raw_db = env.get("WORKSPACE_DATABASE_URL") or f"sqlite:///{data_dir / 'workspace.sqlite3'}"
    database_url = normalize_database_url(raw_db)
    s3 = None
    endpoint = env.get("WORKSPACE_S3_ENDPOINT") or None
    if endpoint:
        missing = [
            name
            for name in ("WORKSPACE_S3_ACCESS_KEY", "WORKSPACE_S3_SECRET_KEY", "WORKSPACE_S3_BUCKET")
            if not env.get(name)
        ]
        if missing:
            raise SettingsError(f"WORKSPACE_S3_ENDPOINT is set but {', '.join(missing)} missing")
        s3 = S3Settings(
            endpoint=endpoint,
            access_key=env["WORKSPACE_S3_ACCESS_KEY"],
            secret_key=env["WORKSPACE_S3_SECRET_KEY"],
            bucket=env["WORKSPACE_S3_BUCKET"],
            secure=_bool("WORKSPACE_S3_SECURE", env.get("WORKSPACE_S3_SECURE"), True),
            public_endpoint=env.get("WORKSPACE_S3_PUBLIC_ENDPOINT") or None,
        )
    extra: dict[str, object] = {}
    if env.get("WORKSPACE_PUBLIC_URL"):
        extra["public_url"] = env["WORKSPACE_PUBLIC_URL"].rstrip("/")
    if env.get("WORKSPACE_JOBS_NAMESPACE"):
        extra["jobs_namespace"] = env["WORKSPACE_JOBS_NAMESPACE"]
    for name, attr in (("WORKSPACE_IMPORT_JOB_BYTES", "import_job_bytes"), ("WORKSPACE_MAX_IMPORT_BYTES", "max_import_bytes"),
                       ("WORKSPACE_JOBS_REDELIVER_SECONDS", "jobs_redeliver_seconds"),
                       ("WORKSPACE_JOBS_MAINTENANCE_PER_MILLION", "jobs_maintenance_per_million")):
        if env.get(name):
            try:
                extra[attr] = int(env[name])
            except ValueError:
                raise SettingsError(f"{name} must be a whole number of bytes, got {env[name]!r}") from None
    if env.get("WORKSPACE_OUTBOUND_ALLOWED_HOSTS"):
        extra["outbound_allowed_hosts"] = tuple(
            h.strip().lower() for h in env["WORKSPACE_OUTBOUND_ALLOWED_HOSTS"].split(",") if h.strip())
    if env.get("WORKSPACE_HTMX_PATH"):
        extra["htmx_path"] = Path(env["WORKSPACE_HTMX_PATH"])
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=_secret_key(data_dir, env.get("WORKSPACE_SECRET_KEY"), redis_url is None),
        redis_url=redis_url,
        s3=s3,
        cookie_secure=_bool("WORKSPACE_COOKIE_SECURE", env.get("WORKSPACE_COOKIE_SECURE"), False),
        debug=_bool("WORKSPACE_DEBUG", env.get("WORKSPACE_DEBUG"), False),
        **extra,  # type: ignore[arg-type]
    )

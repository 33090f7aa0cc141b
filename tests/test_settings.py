"""Settings from WORKSPACE_* variables; start-up errors say what to do."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workspace.config import SettingsError, load_settings, normalize_database_url


def test_embedded_defaults(tmp_path):
    settings = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path)})
    assert settings.embedded and settings.is_sqlite
    assert settings.database_url == f"sqlite:///{tmp_path / 'workspace.sqlite3'}"
    assert settings.s3 is None
    # The generated secret key is kept, so sessions survive a restart.
    assert (tmp_path / "secret_key").read_text().strip() == settings.secret_key
    assert load_settings({"WORKSPACE_DATA_DIR": str(tmp_path)}).secret_key == settings.secret_key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_production_requires_a_shared_secret(tmp_path):
    with pytest.raises(SettingsError, match="WORKSPACE_SECRET_KEY is required"):
        load_settings({"WORKSPACE_DATA_DIR": str(tmp_path), "WORKSPACE_REDIS_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(SettingsError, match="at least 32"):
        load_settings({"WORKSPACE_DATA_DIR": str(tmp_path), "WORKSPACE_SECRET_KEY": "short"})


def test_s3_settings_complete_or_named(tmp_path):
    env = {"WORKSPACE_DATA_DIR": str(tmp_path), "WORKSPACE_S3_ENDPOINT": "127.0.0.1:9000"}
    with pytest.raises(SettingsError, match="WORKSPACE_S3_ACCESS_KEY"):
        load_settings(env)
    env |= {"WORKSPACE_S3_ACCESS_KEY": "a", "WORKSPACE_S3_SECRET_KEY": "b", "WORKSPACE_S3_BUCKET": "c",
            "WORKSPACE_S3_SECURE": "false"}
    s3 = load_settings(env).s3
    assert s3 is not None and s3.secure is False and s3.bucket == "c"
    with pytest.raises(SettingsError, match="WORKSPACE_S3_SECURE"):
        load_settings(env | {"WORKSPACE_S3_SECURE": "maybe"})


@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite+aiosqlite:////x.db", "sqlite:////x.db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
])
def test_database_urls(given, expected):
    assert normalize_database_url(given) == expected


def test_unsupported_database_is_named():
    with pytest.raises(SettingsError, match="unsupported database"):
        normalize_database_url("mysql://root@localhost/x")


def test_missing_htmx_is_a_clear_startup_error(tmp_path):
    from workspace.app import StartupError, create_app

    settings = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path)})
    with pytest.raises(StartupError, match="htmx is missing.*setup step"):
        create_app(replace(settings, htmx_path=tmp_path / "nope.js"))


def test_htmx_is_served_by_the_app(client, htmx_path):
    response = client.get("/vendor/htmx/htmx.min.js")
    assert response.status_code == 200
    assert response.content == htmx_path.read_bytes()


def test_security_headers(client):
    response = client.get("/login")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert len(response.headers["x-request-id"]) >= 8


def test_unmatched_routes_get_security_headers_and_a_styled_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "Not found" in response.text and "<html" in response.text


def test_csp_lets_browsers_load_presigned_media_from_s3(tmp_path):
    from workspace.app.factory import content_security_policy

    local = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path)})
    assert "media-src 'self' data:;" in content_security_policy(local)
    s3 = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path), "WORKSPACE_S3_ENDPOINT": "minio.internal:9000",
                        "WORKSPACE_S3_ACCESS_KEY": "a", "WORKSPACE_S3_SECRET_KEY": "b", "WORKSPACE_S3_BUCKET": "c",
                        "WORKSPACE_S3_SECURE": "false"})
    policy = content_security_policy(s3)
    assert "img-src 'self' data: http://minio.internal:9000;" in policy
    assert "script-src 'self'" in policy

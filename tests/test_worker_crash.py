"""Production mode under a crash: a `workspace worker` is killed with SIGKILL in the middle of an
export; a new worker takes the redelivered message over and the project ends with exactly one
complete export and no partial object (PostgreSQL + Redis + S3 on a moto server, real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import SECRET, csrf_token, login, make_tenant, post_form
from workspace.config import load_settings
from workspace.jobs.models import Job
from workspace.workflow.models import Export

from test_media import moto_endpoint  # noqa: F401  (a real moto S3 server)

TASKS = 60_000


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).with_name("workspace"))
    # Its own process group: dramatiq forks worker processes, and a crash takes all of them down.
    return subprocess.Popen([exe, "worker", "--processes", "1", "--threads", "2"], env=env, start_new_session=True,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115


def _state(runtime, tenant_id):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(tenant_id) as db:
        export = db.scalars(select(Export)).one()
        job = db.get(Job, export.job_id)
        return export, job


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_sigkill_during_export_then_restart_gives_one_complete_export(database, redis_url, tmp_path, moto_endpoint):
    from litestar.testing import TestClient

    from workspace.app import create_app
    from workspace.runtime import build_runtime

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env.update({"WORKSPACE_DATA_DIR": str(tmp_path / "data"), "WORKSPACE_SECRET_KEY": SECRET,
                "WORKSPACE_DATABASE_URL": database.url, "WORKSPACE_REDIS_URL": redis_url,
                "WORKSPACE_S3_ENDPOINT": moto_endpoint, "WORKSPACE_S3_SECURE": "false",
                "WORKSPACE_S3_ACCESS_KEY": "testing", "WORKSPACE_S3_SECRET_KEY": "testing",
                "WORKSPACE_S3_BUCKET": "crash-test", "WORKSPACE_IMPORT_JOB_BYTES": str(1 << 30),
                # Redeliver a dead worker's message after 3 s, and look for such messages on every command.
                "WORKSPACE_JOBS_REDELIVER_SECONDS": "3", "WORKSPACE_JOBS_MAINTENANCE_PER_MILLION": "1000000",
                "WORKSPACE_JOBS_NAMESPACE": f"ws-test-{uuid.uuid4().hex[:8]}", "PYTHONUNBUFFERED": "1"})
    settings = load_settings(env)
    runtime = build_runtime(settings, watch_policy=False)
    log = tmp_path / "worker.log"
    first = _worker(env, log)
    second = None
    try:
        with TestClient(create_app(settings, runtime=runtime), base_url="http://testserver.local") as client:
            client.follow_redirects = False
            world = make_tenant(runtime, "acme")
            login(client, world.owner)
            resp = post_form(client, "/t/acme/projects", {"title": "Crash", "template": "text-classification"})
            pid = int(resp.headers["location"].rsplit("/", 1)[1])
            lines = "".join(json.dumps({"text": f"task {i} " + "words " * 30}) + "\n" for i in range(TASKS))
            resp = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client)},
                               files={"file": ("tasks.jsonl", lines, "application/octet-stream")})
            assert resp.status_code == 303, resp.text[:300]
            assert post_form(client, f"/t/acme/projects/{pid}/exports", {"format": "JSON"}).status_code == 303

            # Kill the worker once the export is under way (part of the file already uploaded).
            deadline = time.monotonic() + 60
            while True:
                export, job = _state(runtime, world.tenant_id)
                if job.status == "running" and job.progress_done >= 5_000:
                    break
                assert job.status in ("queued", "running"), (job.status, job.message, log.read_text()[-2000:])
                assert time.monotonic() < deadline, ("export never got going", log.read_text()[-2000:])
                time.sleep(0.05)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            export, job = _state(runtime, world.tenant_id)
            assert job.status == "running" and export.status != "ready"
            assert list(runtime.media.list_keys(world.tenant_id, "exports/")) == []  # nothing half-written

            second = _worker(env, log)
            deadline = time.monotonic() + 120
            while job.status != "succeeded":
                assert time.monotonic() < deadline, (job.status, job.message, log.read_text()[-3000:])
                assert second.poll() is None, log.read_text()[-3000:]
                time.sleep(0.3)
                export, job = _state(runtime, world.tenant_id)
            assert job.attempts == 2 and export.status == "ready"
            assert export.counts["tasks"] == TASKS
            assert list(runtime.media.list_keys(world.tenant_id, "exports/")) == [export.object_key]
            with runtime.media.open(world.tenant_id, export.object_key) as reader:
                content = reader.read()
            assert hashlib.sha256(content).hexdigest() == export.sha256 and len(json.loads(content)) == TASKS
    finally:
        for proc in (first, second):
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        runtime.close()

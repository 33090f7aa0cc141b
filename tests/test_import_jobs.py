"""Large imports run as background jobs: the upload is stored, a job imports it with progress, the
stored upload is removed afterwards, and failures and cancellations keep nothing.

Embedded mode (in-process worker) runs on both databases; production mode runs a real
``workspace worker`` process on PostgreSQL + Redis, with the upload in S3 (a moto server).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from conftest import SECRET, csrf_token, login, make_tenant, post_form
from worker_process import worker_process
from workspace.audit.models import AuditEvent
from workspace.config import load_settings
from workspace.jobs.models import Job
from workspace.workflow.models import ImportBatch, Task

from test_media import moto_endpoint  # noqa: F401  (a real moto S3 server for the production test)

THRESHOLD = 2_000  # bytes: files above this become jobs in these tests


@pytest.fixture
def settings(database, tmp_path):  # type: ignore[no-untyped-def]
    base = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path / "data"), "WORKSPACE_SECRET_KEY": SECRET})
    return replace(base, database_url=database.url, import_job_bytes=THRESHOLD)


def _jsonl(n: int, *, bad_at: int | None = None, tag: str = "") -> bytes:
    lines = []
    for i in range(1, n + 1):
        lines.append(json.dumps({"body": "no text"} if i == bad_at else {"text": f"task {tag}{i} " + "x" * 20}))
    return ("\n".join(lines) + "\n").encode()


def _project(client, runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/projects", {"title": "Big", "template": "text-classification"})
    assert r.status_code == 303, r.text[:300]
    return world, int(r.headers["location"].rsplit("/", 1)[1])


def _upload(client, pid, name, content, **extra):  # type: ignore[no-untyped-def]
    return client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), **extra},
                       files={"file": (name, content, "application/octet-stream")})


def _jobs(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Job).order_by(Job.id)))


def _count(runtime, world, model):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(func.count()).select_from(model))


def _stored_uploads(runtime, world):  # type: ignore[no-untyped-def]
    return list(runtime.media.list_keys(world.tenant_id, "imports/"))


def test_large_file_is_imported_by_a_job_with_progress_and_audit(client, runtime):
    world, pid = _project(client, runtime)
    content = _jsonl(3000)
    r = _upload(client, pid, "big.jsonl", content)
    assert r.status_code == 303 and r.headers["location"] == f"/t/acme/projects/{pid}/jobs"
    runtime.jobs.join()
    [job] = _jobs(runtime, world)
    assert job.status == "succeeded", (job.message, job.error)
    assert job.result == {"import_id": job.result["import_id"], "tasks": 3000, "annotations": 0, "predictions": 0}
    assert "Imported 3,000 tasks from big.jsonl" in job.message
    assert job.progress_done == job.progress_total == len(content)
    assert _count(runtime, world, Task) == 3000
    assert _stored_uploads(runtime, world) == []  # the stored upload is gone once the job finished
    with runtime.unit_of_work(world.tenant_id) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        batch = db.scalars(select(ImportBatch)).one()
    assert batch.task_count == 3000 and batch.created_by_id == world.owner.user_id
    i = actions.index("job.queued")
    assert actions.index("job.running") > i and actions.index("job.succeeded") > actions.index("job.running")
    assert "import.completed" in actions
    page = client.get(f"/t/acme/projects/{pid}/jobs")
    assert page.status_code == 200 and 'data-status="succeeded"' in page.text and "Import big.jsonl" in page.text
    assert 'hx-trigger="every 1s"' not in page.text  # nothing active: no polling


def test_small_file_stays_synchronous(client, runtime):
    world, pid = _project(client, runtime)
    r = _upload(client, pid, "small.jsonl", _jsonl(5))
    assert r.status_code == 303 and r.headers["location"].endswith("/import")
    assert _count(runtime, world, Task) == 5 and _jobs(runtime, world) == []


def test_a_bad_row_fails_the_job_with_the_row_and_keeps_nothing(client, runtime):
    world, pid = _project(client, runtime)
    assert _upload(client, pid, "bad.jsonl", _jsonl(3000, bad_at=2999)).status_code == 303
    runtime.jobs.join()
    [job] = _jobs(runtime, world)
    assert job.status == "failed"
    assert "line 2999" in job.message and "text" in job.message and "Nothing was imported" in job.message
    assert _count(runtime, world, Task) == 0 and _count(runtime, world, ImportBatch) == 0
    assert _stored_uploads(runtime, world) == []
    page = client.get(f"/t/acme/projects/{pid}/jobs")
    assert 'data-status="failed"' in page.text and "line 2999" in page.text


def test_reimport_of_a_large_file_asks_before_queueing(client, runtime):
    world, pid = _project(client, runtime)
    content = _jsonl(3000)
    assert _upload(client, pid, "big.jsonl", content).status_code == 303
    runtime.jobs.join()
    again = _upload(client, pid, "big.jsonl", content)
    assert again.status_code == 409 and "already imported" in again.text and 'name="confirm"' in again.text
    assert len(_jobs(runtime, world)) == 1 and _stored_uploads(runtime, world) == []
    assert _upload(client, pid, "big.jsonl", content, confirm="1").status_code == 303
    runtime.jobs.join()
    assert [j.status for j in _jobs(runtime, world)] == ["succeeded", "succeeded"]
    assert _count(runtime, world, Task) == 6000


def test_upload_over_the_import_limit_is_refused_with_413(client, runtime, settings):
    world, pid = _project(client, runtime)
    limited = replace(settings, max_import_bytes=10_000)
    runtime.settings = limited
    try:
        r = _upload(client, pid, "huge.jsonl", _jsonl(1000))
    finally:
        runtime.settings = settings
    assert r.status_code == 413 and "largest import" in r.text and "Split the file" in r.text
    assert _jobs(runtime, world) == [] and _count(runtime, world, Task) == 0


def test_cancelling_a_running_import_keeps_nothing(client, runtime, monkeypatch):
    """The owner presses Cancel while the job runs (simulated at its first progress report)."""
    world, pid = _project(client, runtime)
    board = runtime.job_board
    original = board.set_progress
    pressed: list[int] = []

    def press_cancel_once(job_id, done, total, message):  # type: ignore[no-untyped-def]
        original(job_id, done, total, message)
        if not pressed and done > 0:
            pressed.append(job_id)
            r = client.post(f"/t/acme/projects/{pid}/jobs/{job_id}/cancel",
                            data={"_csrf_token": csrf_token(client)})
            assert r.status_code == 303, r.text[:300]

    monkeypatch.setattr(board, "set_progress", press_cancel_once)
    assert _upload(client, pid, "big.jsonl", _jsonl(20_000)).status_code == 303
    runtime.jobs.join()
    [job] = _jobs(runtime, world)
    assert pressed == [job.id]
    assert job.status == "cancelled" and "nothing was kept" in job.message and world.owner.email in job.message
    assert _count(runtime, world, Task) == 0 and _stored_uploads(runtime, world) == []


def test_cancel_a_queued_job_and_a_duplicate_message_does_nothing(client, runtime):
    from workspace.jobs.runner import execute_job

    world, pid = _project(client, runtime)
    runtime.jobs.stop_worker()  # nothing consumes: the job stays queued
    assert _upload(client, pid, "big.jsonl", _jsonl(3000)).status_code == 303
    [job] = _jobs(runtime, world)
    assert job.status == "queued" and len(_stored_uploads(runtime, world)) == 1
    r = client.post(f"/t/acme/projects/{pid}/jobs/{job.id}/cancel", data={"_csrf_token": csrf_token(client)},
                    headers={"hx-request": "true"})
    assert r.status_code == 200 and 'data-status="cancelled"' in r.text
    again = client.post(f"/t/acme/projects/{pid}/jobs/{job.id}/cancel", data={"_csrf_token": csrf_token(client)},
                        headers={"hx-request": "true"})
    assert "already cancelled" in again.text
    execute_job(runtime, job.id)  # the message arrives anyway: no work, and the upload is cleaned up
    [job] = _jobs(runtime, world)
    assert job.status == "cancelled" and _count(runtime, world, Task) == 0
    assert _stored_uploads(runtime, world) == []


def test_a_finished_job_is_not_run_twice(client, runtime):
    from workspace.jobs.runner import execute_job

    world, pid = _project(client, runtime)
    assert _upload(client, pid, "big.jsonl", _jsonl(3000)).status_code == 303
    runtime.jobs.join()
    [job] = _jobs(runtime, world)
    execute_job(runtime, job.id)  # a duplicated or retried message
    assert _count(runtime, world, Task) == 3000 and _count(runtime, world, ImportBatch) == 1


def test_job_of_a_member_who_lost_the_permission_fails_clearly(client, runtime):
    from workspace.jobs.runner import execute_job
    from workspace.tenancy.authz import policy

    world, pid = _project(client, runtime)
    runtime.jobs.stop_worker()
    assert _upload(client, pid, "big.jsonl", _jsonl(3000)).status_code == 303
    [job] = _jobs(runtime, world)
    with runtime.unit_of_work(world.tenant_id) as db:
        policy.set_member_role(db, world.tenant_id, world.owner.user_id, "annotator")
    execute_job(runtime, job.id)
    [job] = _jobs(runtime, world)
    assert job.status == "failed" and "no longer has the permission" in job.message
    assert _count(runtime, world, Task) == 0


def test_jobs_page_polls_while_a_job_is_active(client, runtime):
    world, pid = _project(client, runtime)
    runtime.jobs.stop_worker()
    assert _upload(client, pid, "big.jsonl", _jsonl(3000)).status_code == 303
    page = client.get(f"/t/acme/projects/{pid}/jobs")
    assert 'hx-trigger="every 1s"' in page.text and 'data-status="queued"' in page.text
    part = client.get(f"/t/acme/projects/{pid}/jobs/list")
    assert part.status_code == 200 and "<html" not in part.text and 'data-status="queued"' in part.text


# ------------------------------------------------------------------------- production mode


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_worker_process_runs_import_job_from_s3(database, redis_url, tmp_path, moto_endpoint):
    """PostgreSQL + Redis + S3: the web app queues, a real `workspace worker` process imports."""
    from litestar.testing import TestClient

    from workspace.app import create_app

    with worker_process(database.url, redis_url, tmp_path,
                        WORKSPACE_S3_ENDPOINT=moto_endpoint.removeprefix("http://"), WORKSPACE_S3_SECURE="false",
                        WORKSPACE_S3_ACCESS_KEY="testing", WORKSPACE_S3_SECRET_KEY="testing",
                        WORKSPACE_S3_BUCKET="jobs-test", WORKSPACE_IMPORT_JOB_BYTES=str(THRESHOLD)) as run:
        settings, runtime, worker = run.settings, run.runtime, run.worker
        with TestClient(create_app(settings, runtime=runtime), base_url="http://testserver.local") as client:
            client.follow_redirects = False
            world, pid = _project(client, runtime)
            assert _upload(client, pid, "big.jsonl", _jsonl(5000)).status_code == 303
            [job] = _jobs(runtime, world)
            assert len(_stored_uploads(runtime, world)) == 1  # in S3, where the worker can read it
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and job.status != "succeeded":
                assert worker.poll() is None, run.log_tail()
                time.sleep(0.3)
                [job] = _jobs(runtime, world)
            assert job.status == "succeeded", (job.status, job.message, run.log_tail())
            assert _count(runtime, world, Task) == 5000
            # The worker deletes the stored upload just after the job's final commit: wait for it.
            while time.monotonic() < deadline and _stored_uploads(runtime, world):
                time.sleep(0.1)
            assert _stored_uploads(runtime, world) == []

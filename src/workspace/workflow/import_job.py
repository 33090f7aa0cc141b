"""Large task imports as background jobs.

The web request stores the uploaded file in the media store (under the tenant's ``imports/`` prefix,
so a worker process on another machine can read it), checks for a re-import, and creates the job; the
worker copies the object to a local temporary file and runs the same ``import_tasks`` as a small
upload, reporting progress by bytes read. The import and the job's "succeeded" commit together; the
stored upload is deleted once the job has finished, whatever the outcome.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy.orm import Session

from workspace.jobs.models import Job
from workspace.jobs.services import create_job
from workspace.media.errors import MediaNotFound
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, ServiceError
from workspace.workflow.importing import content_fingerprint
from workspace.workflow.imports import import_tasks, previous_import
from workspace.workflow.services import get_project

if TYPE_CHECKING:
    from workspace.jobs.runner import JobContext
    from workspace.media import MediaStore
    from workspace.runtime import Runtime

__all__ = ["queue_import", "run_import", "cleanup_import"]

PREFIX = "imports"


def queue_import(session: Session, ctx: TenantContext, store: MediaStore, project_id: int, source: BinaryIO,
                 filename: str, *, size: int, format: str | None, allow_duplicate: bool) -> Job:
    """Store the upload and create the import job (sent to a worker when the transaction commits)."""
    project = get_project(session, project_id)
    fingerprint = content_fingerprint(source)
    earlier = previous_import(session, project.id, fingerprint)
    if earlier is not None and not allow_duplicate:
        raise Conflict(
            f"This file was already imported on {earlier.created_at:%Y-%m-%d %H:%M} UTC as import #{earlier.id} "
            f"({earlier.task_count} tasks). Confirm to import it again.", field="file")
    key = f"{PREFIX}/{uuid.uuid4().hex}"
    source.seek(0)
    store.put(ctx.tenant_id, key, source, content_type="application/octet-stream", size=size)
    return create_job(session, ctx, "import", title=f"Import {filename}", project_id=project.id,
                      params={"object_key": key, "filename": filename[:255], "format": format,
                              "allow_duplicate": allow_duplicate, "size": size})


def run_import(session: Session, job: JobContext) -> tuple[dict[str, Any], str]:
    params = job.params
    store = job.runtime.media
    filename = str(params["filename"])
    with tempfile.TemporaryFile() as spooled:
        try:
            with store.open(job.tenant_id, params["object_key"]) as reader:
                shutil.copyfileobj(reader, spooled, 1024 * 1024)
        except MediaNotFound:
            raise ServiceError(f"The uploaded file {filename} is no longer stored; upload it again.") from None
        size = spooled.tell()
        spooled.seek(0)
        job.progress(0, size, f"Reading {filename}")
        assert job.project_id is not None
        batch = import_tasks(
            session, job.ctx, job.project_id, spooled, filename, format=params.get("format"),
            allow_duplicate=bool(params.get("allow_duplicate")),
            on_batch=lambda tasks, position: job.progress(position, size, f"{tasks:,} tasks imported so far"),
        )
    message = f"Imported {batch.task_count:,} tasks from {batch.filename}"
    if batch.annotation_count:
        message += f" with {batch.annotation_count:,} annotations"
    if batch.prediction_count:
        message += f" and {batch.prediction_count:,} predictions"
    result = {"import_id": batch.id, "tasks": batch.task_count, "annotations": batch.annotation_count,
              "predictions": batch.prediction_count}
    return result, message + "."


def cleanup_import(runtime: Runtime, job: Job) -> None:
    key = (job.params or {}).get("object_key")
    if key:
        runtime.media.delete(job.tenant_id, key)

"""Importing data into a project: upload a file, see what was imported, confirm re-imports."""

from __future__ import annotations

import shutil
import tempfile
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from workspace.tenancy.errors import ServiceError
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.workflow import services as svc
from workspace.workflow.importing import FORMATS
from workspace.workflow.imports import import_tasks
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import ImportBatch

Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
MAX_UPLOAD = 64 * 1024 * 1024  # larger files belong in a background import (jobs issue)


def _import_page(request: Request[Any, Any, Any], project_id: int, *, status: int = 200,
                 errors: dict[str, str] | None = None, duplicate: bool = False) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    batches = list(db.scalars(select(ImportBatch).where(ImportBatch.project_id == project.id)
                              .order_by(ImportBatch.id.desc()).limit(20)))
    fields = sorted(parse_label_config(project.label_config).data_fields)
    return page(request, "workflow/import.html", status=status, project=project, batches=batches, fields=fields,
                formats=FORMATS, errors=errors or {}, duplicate=duplicate)


@get("/t/{slug:str}/projects/{project_id:int}/import", opt=requires("project:update", nav="projects"),
     name="import_form")
@in_thread
def import_form(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return _import_page(request, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/import", opt=requires("project:update", nav="projects"),
      name="import_upload", request_max_body_size=MAX_UPLOAD)
async def import_upload(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                        data: Upload) -> Template | Redirect:
    upload = data.get("file")
    confirm = str(data.get("confirm") or "") == "1"
    fmt = str(data.get("format") or "") or None
    import anyio

    if not isinstance(upload, UploadFile) or not upload.filename:
        return await anyio.to_thread.run_sync(
            lambda: _import_page(request, project_id, status=422, errors={"file": "Choose a file to import."}))

    def work() -> Template | Redirect:
        # Spool to a real temporary file: the import reads it twice (fingerprint, then parse) in bounded memory.
        with tempfile.TemporaryFile() as spooled:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, spooled, 1024 * 1024)
            spooled.seek(0)
            try:
                batch = import_tasks(_db(request), ctx_of(request), project_id, spooled, upload.filename,
                                     format=fmt, allow_duplicate=confirm)
            except ServiceError as exc:
                if exc.status == 404:
                    raise
                _db(request).rollback()
                return _import_page(request, project_id, status=409 if exc.status == 409 else 422,
                                    errors={"file": exc.message}, duplicate=exc.status == 409)
        notice(request, f"Imported {batch.task_count:,} tasks from {batch.filename}"
                        + (f" with {batch.annotation_count:,} annotations" if batch.annotation_count else "")
                        + (f" and {batch.prediction_count:,} predictions" if batch.prediction_count else "") + ".")
        return see_other(f"/t/{slug}/projects/{project_id}/import")

    try:
        return await anyio.to_thread.run_sync(work)
    finally:
        await upload.close()


route_handlers = [import_form, import_upload]

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

from workspace.tenancy.errors import Invalid, ServiceError, TooLarge
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import services as svc
from workspace.workflow.importing import FORMATS
from workspace.workflow.import_job import queue_import
from workspace.workflow.imports import import_tasks
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.media_import import (
    MediaImportResult,
    import_media_files,
    import_media_urls,
    import_media_zip,
    media_target,
)
from workspace.workflow.models import ImportBatch

Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
MAX_UPLOAD = 2 * 1024 * 1024 * 1024  # the multipart parser spools to disk; settings.max_import_bytes decides
MAX_MEDIA_UPLOAD = 2 * 1024 * 1024 * 1024  # media files or one zip archive, spooled to disk
MAX_URL_LIST = 1024 * 1024


def _import_page(request: Request[Any, Any, Any], project_id: int, *, status: int = 200,
                 errors: dict[str, str] | None = None, duplicate: bool = False) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    batches = list(db.scalars(select(ImportBatch).where(ImportBatch.project_id == project.id)
                              .order_by(ImportBatch.id.desc()).limit(20)))
    config = parse_label_config(project.label_config)
    fields = sorted(config.data_fields)
    try:
        media_field, media_kind = media_target(config)
    except ServiceError:
        media_field = media_kind = None
    return page(request, "workflow/import.html", status=status, project=project, batches=batches, fields=fields,
                formats=FORMATS, errors=errors or {}, duplicate=duplicate, media_field=media_field,
                media_kind=media_kind, job_threshold=runtime_of(request).settings.import_job_bytes)


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

    settings = runtime_of(request).settings

    def work() -> Template | Redirect:
        # Spool to a real temporary file: the import reads it twice (fingerprint, then parse) in bounded memory.
        with tempfile.TemporaryFile() as spooled:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, spooled, 1024 * 1024)
            size = spooled.tell()
            spooled.seek(0)
            try:
                if size > settings.max_import_bytes:
                    raise TooLarge(f"{upload.filename} is {size / 2**20:,.0f} MiB; the largest import is "
                                   f"{settings.max_import_bytes / 2**20:,.0f} MiB. Split the file and import the "
                                   "parts.", field="file")
                if size > settings.import_job_bytes:
                    job = queue_import(_db(request), ctx_of(request), runtime_of(request).media, project_id,
                                       spooled, upload.filename, size=size, format=fmt, allow_duplicate=confirm)
                    notice(request, f"{upload.filename} ({size / 2**20:,.1f} MiB) is being imported in the "
                                    f"background as job #{job.id}; its progress is shown below.")
                    return see_other(f"/t/{slug}/projects/{project_id}/jobs")
                batch = import_tasks(_db(request), ctx_of(request), project_id, spooled, upload.filename,
                                     format=fmt, allow_duplicate=confirm)
            except ServiceError as exc:
                if exc.status == 404:
                    raise
                _db(request).rollback()
                status = exc.status if exc.status in (409, 413) else 422
                return _import_page(request, project_id, status=status,
                                    errors={"file": exc.message}, duplicate=exc.status == 409)
        notice(request, f"Imported {batch.task_count:,} tasks from {batch.filename}"
                        + (f" with {batch.annotation_count:,} annotations" if batch.annotation_count else "")
                        + (f" and {batch.prediction_count:,} predictions" if batch.prediction_count else "") + ".")
        return see_other(f"/t/{slug}/projects/{project_id}/import")

    try:
        return await anyio.to_thread.run_sync(work)
    finally:
        await upload.close()


def _files(value: Any) -> list[UploadFile]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, UploadFile) and v.filename]


def _media_outcome(request: Request[Any, Any, Any], slug: str, project_id: int, field: str, run) -> Template | Redirect:  # type: ignore[no-untyped-def]
    """Run a media import; on a refusal roll back and show the page with the message (400/409/413)."""
    db = _db(request)
    svc.get_project(db, project_id)  # 404 for a foreign or missing project before anything else
    try:
        result: MediaImportResult = run(db)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _import_page(request, project_id, status=exc.status, errors={field: exc.message},
                            duplicate=exc.status == 409)
    notice(request, result.message)
    return see_other(f"/t/{slug}/projects/{project_id}/import")


def _is_zip(upload: UploadFile) -> bool:
    upload.file.seek(0)
    head = upload.file.read(4)
    upload.file.seek(0)
    return head == b"PK\x03\x04" or (upload.filename or "").lower().endswith(".zip")


@post("/t/{slug:str}/projects/{project_id:int}/import/media", opt=requires("project:update", nav="projects"),
      name="import_media", request_max_body_size=MAX_MEDIA_UPLOAD)
async def import_media(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                       data: Upload) -> Template | Redirect:
    """Image/audio files (several at once) or one zip archive of them: a task per media file."""
    import anyio

    uploads = _files(data.get("media"))
    confirm = str(data.get("confirm") or "") == "1"
    ctx = ctx_of(request)
    store = runtime_of(request).media

    def run(db):  # type: ignore[no-untyped-def]
        if not uploads:
            raise Invalid("Choose image or audio files, or a zip archive of them.", field="media")
        zips = [u for u in uploads if _is_zip(u)]
        if zips and len(uploads) > 1:
            raise Invalid("Upload a zip archive on its own (not together with other files).", field="media")
        if zips:
            with tempfile.TemporaryFile() as spooled:
                shutil.copyfileobj(zips[0].file, spooled, 1024 * 1024)
                spooled.seek(0)
                return import_media_zip(db, ctx, store, project_id, spooled, zips[0].filename,
                                        allow_duplicate=confirm)
        for upload in uploads:
            upload.file.seek(0)
        return import_media_files(db, ctx, store, project_id, [(u.filename, u.file) for u in uploads],
                                  allow_duplicate=confirm)

    try:
        return await anyio.to_thread.run_sync(lambda: _media_outcome(request, slug, project_id, "media", run))
    finally:
        for upload in uploads:
            await upload.close()


@post("/t/{slug:str}/projects/{project_id:int}/import/urls", opt=requires("project:update", nav="projects"),
      name="import_media_urls", request_max_body_size=MAX_URL_LIST)
async def import_urls(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      data: Upload) -> Template | Redirect:
    """A list of http(s) media URLs (a text file or the text area), fetched through the guarded client."""
    import anyio

    uploads = _files(data.get("url_file"))
    typed = data.get("urls")
    typed = typed[-1] if isinstance(typed, list) and typed else typed
    confirm = str(data.get("confirm") or "") == "1"
    ctx = ctx_of(request)
    store = runtime_of(request).media
    policy = request.app.state.get("outbound_policy")  # tests inject one that allows loopback
    text, name = (str(typed or ""), "URL list")
    if uploads:
        raw = await uploads[0].read()
        name = uploads[0].filename
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = "\x00"  # refused below with a clear message

    def run(db):  # type: ignore[no-untyped-def]
        if "\x00" in text:
            raise Invalid(f"{name} is not a UTF-8 text file of URLs.", field="urls")
        return import_media_urls(db, ctx, store, project_id, text, filename=name, policy=policy,
                                 allow_duplicate=confirm)

    try:
        return await anyio.to_thread.run_sync(lambda: _media_outcome(request, slug, project_id, "urls", run))
    finally:
        for upload in uploads:
            await upload.close()


route_handlers = [import_form, import_upload, import_media, import_urls]

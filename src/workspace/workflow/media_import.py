"""Media imports: image/audio files, zip archives of them and URL lists become tasks; and the
short-lived URLs the browser gets for them.

Every file is stored in the tenant's media store under ``uploads/<import_batch_id>/<safe-name>``
with the content type *sniffed from its bytes* (the name and the browser's claimed type are never
trusted), and becomes one task whose data is ``{<media field>: "/media/<key>"}``: the field of the
project's single ``Image`` or ``Audio`` tag. ``"/media/<key>"`` is a stable reference relative to the
tenant; the labeling page turns it into a short-lived URL (:func:`media_url`) when it renders.

All or nothing: any refused file, archive entry or URL raises a :class:`ServiceError` naming it,
after every object this import already stored has been deleted; the caller's transaction rollback
removes the import batch, so no task and no object remains.

Choices made here:

* A direct upload that is not media (or not the project's kind: audio into an ``Image`` project)
  is **refused** (400). In a zip, entries that are not media of the project's kind (``readme.txt``,
  ``__MACOSX/``, dot files) are **skipped** and counted in the result; an archive with no media is
  refused.
* Zip archives: entries with absolute paths, drive letters or ``..`` (zip-slip), symlink entries and
  encrypted entries are refused (400); more than ``max_entries`` entries, more than
  ``max_total_bytes`` uncompressed, or an entry whose expansion ratio passes ``max_ratio`` once it
  is past ``ratio_floor`` bytes (zip bomb) are refused (413). Sizes are counted on the bytes that
  actually come out of the decompressor while streaming, not taken from the headers (the headers
  only allow refusing early).
* URL lists: one ``http(s)`` URL per line (blank lines and ``#`` comments ignored), each fetched
  only through :class:`~workspace.lib.outbound.GuardedClient`; a blocked or failing URL fails the
  whole import with its line number and the reason.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy.orm import Session

from workspace.lib.outbound import GuardedClient, OutboundError, OutboundPolicy
from workspace.lib.timeutil import utcnow
from workspace.media import MediaError, MediaKeyError, MediaNotFound, MediaStore
from workspace.media.content import make_thumbnail, read_head, sniff
from workspace.media.keys import validate_key
from workspace.media.store import PrependedStream
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid, ServiceError, TooLarge
from workspace.tenancy.scoping import stamp_rows
from workspace.workflow.imports import previous_import
from workspace.workflow.label_config import LabelConfig, parse_label_config
from workspace.workflow.models import ImportBatch
from workspace.workflow.repositories import insert_tasks
from workspace.workflow.services import get_project

if TYPE_CHECKING:
    from workspace.runtime import Runtime

__all__ = [
    "MEDIA_PREFIX",
    "MediaImportResult",
    "MediaLimits",
    "MediaTooLarge",
    "import_media_files",
    "import_media_urls",
    "import_media_zip",
    "media_target",
    "media_url",
    "parse_url_list",
    "safe_file_name",
]

MiB = 1024 * 1024
GiB = 1024 * MiB
MEDIA_PREFIX = "/media/"
VIEW_URL_EXPIRY = timedelta(minutes=15)


class MediaTooLarge(TooLarge):
    """A media size or count limit was passed (answered 413)."""


@dataclass(frozen=True)
class MediaLimits:
    max_files: int = 1000  # files in one upload form, URLs in one list
    max_file_bytes: int = 500 * MiB  # one stored object
    max_entries: int = 10_000  # entries in one zip (directories included)
    max_total_bytes: int = 2 * GiB  # uncompressed bytes of one zip
    max_ratio: int = 100  # uncompressed / compressed bytes of one zip entry ...
    ratio_floor: int = 10 * MiB  # ... once the entry has produced more than this


@dataclass(frozen=True)
class MediaImportResult:
    batch: ImportBatch
    stored: int
    skipped: int = 0

    @property
    def message(self) -> str:
        text = f"Imported {self.stored:,} media file{'' if self.stored == 1 else 's'} from {self.batch.filename}"
        if self.skipped:
            text += f"; skipped {self.skipped:,} entr{'y' if self.skipped == 1 else 'ies'} that are not media"
        return text + "."


# ------------------------------------------------------------------------------------- the project


def media_target(config: LabelConfig) -> tuple[str, str]:
    """(task data field, "image" or "audio") of the config's single Image/Audio tag, or Invalid."""
    media = [o for o in config.objects if o.tag in ("Image", "Audio")]
    if len(media) != 1 or not media[0].field:
        found = ", ".join(f"<{o.tag} name={o.name!r}>" for o in media) or "none"
        raise Invalid("Media import needs a label config with exactly one Image or Audio tag that reads a task "
                      f"field (value=\"$image\"); this project has {found}.", field="media")
    obj = media[0]
    others = sorted(config.data_fields - {obj.field})
    if others:
        raise Invalid(f"Media import fills only the field {obj.field!r}, but this project's tasks also need "
                      f"{', '.join(repr(f) for f in others)}; import a JSON/CSV file that references the media "
                      "instead.", field="media")
    return obj.field, obj.tag.lower()  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------- names

_NAME_BAD = re.compile(r"[^A-Za-z0-9._\-+=@,()~]+")
_DOTS = re.compile(r"\.{2,}")


def safe_file_name(name: str, used: set[str] | None = None) -> str:
    """A media-key segment from a user's file name: its last path part, ASCII, no ``..``, at most
    120 bytes, unique within ``used`` (``-2``, ``-3`` ... before the extension)."""
    base = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    base = base.replace("\\", "/").rsplit("/", 1)[-1]
    base = _DOTS.sub(".", _NAME_BAD.sub("_", base)).strip(".")
    if not base or not re.match(r"[A-Za-z0-9_]", base):
        base = "file" + (f"_{base}" if base else "")
    stem, dot, ext = base.rpartition(".")
    if not dot or len(ext) > 10:
        stem, dot, ext = base, "", ""
    stem = stem[: 120 - len(ext) - 1] or "file"
    candidate, n = f"{stem}{dot}{ext}", 1
    while used is not None and candidate.lower() in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    if used is not None:
        used.add(candidate.lower())
    return candidate


# ------------------------------------------------------------------------------------------ staging


class _Metered(PrependedStream):
    """Reads ``head`` then ``stream``; hashes what passes and calls ``check(total)`` on every read,
    so limits are enforced on the bytes actually read while the store consumes them."""

    def __init__(self, head: bytes, stream: BinaryIO, digest, check) -> None:  # type: ignore[no-untyped-def]
        super().__init__(head, stream)
        self._digest, self._check = digest, check
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if data:
            self.count += len(data)
            self._check(self.count)
            self._digest.update(data)
        return data


class _Stager:
    """Stores objects under ``uploads/<batch>/`` and remembers every key, so ``discard`` removes them."""

    def __init__(self, store: MediaStore, tenant_id: int, batch_id: int, kind: str, limits: MediaLimits) -> None:
        self.store, self.tenant_id, self.kind, self.limits = store, tenant_id, kind, limits
        self.prefix = f"uploads/{batch_id}/"
        self.keys: list[str] = []
        self.used: set[str] = set()
        self.fingerprint = hashlib.sha256()

    def add(self, label: str, name: str, stream: BinaryIO, *, skip_non_media: bool = False,
            check=None) -> str | None:  # type: ignore[no-untyped-def]
        """Store one file; the key, or None when skipped. ``label`` names it in errors."""
        head = read_head(stream)
        content_type = sniff(head)
        if content_type is None or not content_type.startswith(self.kind + "/"):
            if skip_non_media:
                return None
            if content_type is None:
                raise Invalid(f"{label} is not an image or audio file (checked by its content; its name and "
                              "claimed type are not trusted). Nothing was imported.", field="media")
            raise Invalid(f"{label} is {content_type}, but this project labels {self.kind} files. "
                          "Nothing was imported.", field="media")
        limit = self.limits.max_file_bytes

        def checked(total: int) -> None:
            if total > limit:
                raise MediaTooLarge(f"{label} is larger than {limit // MiB} MiB. Nothing was imported.",
                                    field="media")
            if check is not None:
                check(total)

        digest = hashlib.sha256()
        key = self.prefix + safe_file_name(name, self.used)
        self.keys.append(key)  # before put: a failed put leaves nothing, and deleting nothing is fine
        try:
            self.store.put(self.tenant_id, key, _Metered(head, stream, digest, checked), content_type=content_type)
        except MediaError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ServiceError):
                raise cause from None
            raise Invalid(f"{label} could not be stored: {exc}. Nothing was imported.", field="media") from None
        self.fingerprint.update(key.rsplit("/", 1)[1].encode() + b"\0" + digest.digest())
        return key

    def discard(self) -> None:
        for key in self.keys:
            try:
                self.store.delete(self.tenant_id, key)
            except MediaError:
                pass  # best effort: a leftover object is unreachable (no task references it)


def _run(session: Session, ctx: TenantContext, store: MediaStore, project_id: int, *, filename: str, fmt: str,
         allow_duplicate: bool, limits: MediaLimits, fill) -> MediaImportResult:  # type: ignore[no-untyped-def]
    """Create the batch, let ``fill(stager)`` store files (returns the skipped count), insert the tasks."""
    project = get_project(session, project_id)
    field_name, kind = media_target(parse_label_config(project.label_config))
    batch = ImportBatch(project_id=project.id, filename=filename[:255], format=fmt, fingerprint="0" * 64,
                        created_by_id=ctx.user_id)
    session.add(batch)
    session.flush()
    stager = _Stager(store, ctx.tenant_id, batch.id, kind, limits)
    try:
        skipped = fill(stager)
        if not stager.keys:
            raise Invalid(f"{filename}: no {kind} files found"
                          + (f" ({skipped:,} other entries skipped)" if skipped else "") + ". Nothing was imported.",
                          field="media")
        fingerprint = stager.fingerprint.hexdigest()
        earlier = previous_import(session, project.id, fingerprint)
        if earlier is not None and not allow_duplicate:
            raise Conflict(f"These files were already imported on {earlier.created_at:%Y-%m-%d %H:%M} UTC as import "
                           f"#{earlier.id} ({earlier.task_count} tasks). Confirm to import them again.",
                           field="media")
        now = utcnow()
        rows = stamp_rows(session, [
            {"project_id": project.id, "data": {field_name: MEDIA_PREFIX + key}, "import_id": batch.id,
             "created_at": now, "annotation_count": 0, "prediction_count": 0}
            for key in stager.keys
        ])
        for start in range(0, len(rows), 5000):
            insert_tasks(session, rows[start:start + 5000], need_ids=False)
        batch.fingerprint = fingerprint
        batch.task_count = len(rows)
        session.flush()
        from workspace.webhooks.services import emit  # sent only if this import commits, like a file import

        emit(session, ctx, "import.completed", project.id, {
            "import_id": batch.id, "filename": batch.filename, "format": batch.format, "tasks": len(rows),
            "annotations": 0, "predictions": 0, "media": kind, "skipped": skipped})
    except BaseException:
        stager.discard()
        raise
    return MediaImportResult(batch, len(stager.keys), skipped)


def _batch_name(names: list[str]) -> str:
    if not names:
        return "media"
    shown = ", ".join(names[:3])
    return shown + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")


# ----------------------------------------------------------------------------------- 1. plain files


def import_media_files(session: Session, ctx: TenantContext, store: MediaStore, project_id: int,
                       files: list[tuple[str, BinaryIO]], *, allow_duplicate: bool = False,
                       limits: MediaLimits = MediaLimits()) -> MediaImportResult:
    """Each (file name, stream) becomes one stored object and one task; any non-media file fails all."""
    if len(files) > limits.max_files:
        raise MediaTooLarge(f"{len(files):,} files in one upload; at most {limits.max_files:,} (use a zip "
                            "archive for more).", field="media")

    def fill(stager: _Stager) -> int:
        for name, stream in files:
            stager.add(repr(name), name, stream)
        return 0

    return _run(session, ctx, store, project_id, filename=_batch_name([n for n, _ in files]), fmt="media",
                allow_duplicate=allow_duplicate, limits=limits, fill=fill)


# ------------------------------------------------------------------------------------------- 2. zip

_S_IFMT = 0o170000


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or "\x00" in name:
        return "has an unsafe path (absolute or with '..'; zip-slip)"
    if stat.S_ISLNK((info.external_attr >> 16) & 0xFFFF):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _skippable(info: zipfile.ZipInfo) -> bool:
    parts = info.filename.replace("\\", "/").split("/")
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts if p)


def import_media_zip(session: Session, ctx: TenantContext, store: MediaStore, project_id: int, source: BinaryIO,
                     filename: str, *, allow_duplicate: bool = False,
                     limits: MediaLimits = MediaLimits()) -> MediaImportResult:
    """Every media entry of the (seekable) zip ``source`` becomes a task; see the module notes."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Invalid(f"{filename} is not a readable zip archive ({exc}). Nothing was imported.",
                      field="media") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise MediaTooLarge(f"{filename} has {len(infos):,} entries; at most {limits.max_entries:,} are "
                                "allowed. Nothing was imported.", field="media")
        declared = 0
        for info in infos:  # refuse before storing anything when the headers already tell
            problem = _entry_problem(info)
            if problem:
                raise Invalid(f"{filename}: entry {info.filename!r} {problem}. Nothing was imported.", field="media")
            declared += info.file_size
            _check_entry(filename, info, info.file_size, limits)
        if declared > limits.max_total_bytes:
            raise MediaTooLarge(f"{filename} would expand to {declared // MiB:,} MiB; at most "
                                f"{limits.max_total_bytes // MiB:,} MiB. Nothing was imported.", field="media")

        def fill(stager: _Stager) -> int:
            skipped = 0
            total = 0
            for info in infos:
                if info.is_dir():
                    continue
                if _skippable(info):
                    skipped += 1
                    continue
                done = 0

                def check(count: int, info: zipfile.ZipInfo = info, total: int = total) -> None:
                    nonlocal done
                    done = count
                    _check_entry(filename, info, count, limits)
                    if total + count > limits.max_total_bytes:
                        raise MediaTooLarge(f"{filename} expands to more than {limits.max_total_bytes // MiB:,} MiB. "
                                            "Nothing was imported.", field="media")

                try:
                    with archive.open(info) as entry:
                        key = stager.add(f"{filename}: entry {info.filename!r}", info.filename, entry,
                                         skip_non_media=True, check=check)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError,
                        EOFError, OSError, ValueError) as exc:
                    raise Invalid(f"{filename}: entry {info.filename!r} could not be read ({exc}). "
                                  "Nothing was imported.", field="media") from None
                if key is None:
                    skipped += 1
                total += done
            return skipped

        return _run(session, ctx, store, project_id, filename=filename, fmt="zip", allow_duplicate=allow_duplicate,
                    limits=limits, fill=fill)


def _check_entry(filename: str, info: zipfile.ZipInfo, size: int, limits: MediaLimits) -> None:
    if size > limits.max_file_bytes:
        raise MediaTooLarge(f"{filename}: entry {info.filename!r} is larger than {limits.max_file_bytes // MiB} MiB. "
                            "Nothing was imported.", field="media")
    if size > limits.ratio_floor and size > limits.max_ratio * max(info.compress_size, 1):
        raise MediaTooLarge(f"{filename}: entry {info.filename!r} expands more than {limits.max_ratio}x "
                            f"({info.compress_size:,} compressed bytes to over {size:,}): refused as a zip bomb. "
                            "Nothing was imported.", field="media")


# -------------------------------------------------------------------------------------- 4. URL list


def parse_url_list(text: str, limits: MediaLimits = MediaLimits()) -> list[tuple[int, str]]:
    """(line number, URL) for every non-blank, non-``#`` line; Invalid naming the first bad line."""
    urls: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        if not re.match(r"https?://\S+$", url, re.IGNORECASE):
            raise Invalid(f"Line {number}: {url[:200]!r} is not an http:// or https:// URL. Nothing was imported.",
                          field="urls")
        urls.append((number, url))
    if not urls:
        raise Invalid("The URL list is empty: put one http(s) URL per line.", field="urls")
    if len(urls) > limits.max_files:
        raise MediaTooLarge(f"{len(urls):,} URLs in one list; at most {limits.max_files:,}.", field="urls")
    return urls


def import_media_urls(session: Session, ctx: TenantContext, store: MediaStore, project_id: int, text: str, *,
                      filename: str = "URL list", policy: OutboundPolicy | None = None,
                      allow_duplicate: bool = False, limits: MediaLimits = MediaLimits()) -> MediaImportResult:
    """Fetch every URL through the guarded client (default policy: public addresses only), store it."""
    urls = parse_url_list(text, limits)
    client = GuardedClient(policy or OutboundPolicy(max_bytes=min(limits.max_file_bytes, 200 * MiB)))

    def fill(stager: _Stager) -> int:
        for number, url in urls:
            label = f"Line {number} ({url[:200]})"
            name = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1] or f"line-{number}"
            try:
                with client.stream("GET", url) as answer:
                    answer.raise_for_status()
                    stager.add(label, name, _IterReader(answer.iter_bytes(256 * 1024)))
            except OutboundError as exc:
                raise Invalid(f"{label}: {exc}. Nothing was imported.", field="urls") from None
        return 0

    return _run(session, ctx, store, project_id, filename=filename, fmt="urls", allow_duplicate=allow_duplicate,
                limits=limits, fill=fill)


class _IterReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return data
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


# ------------------------------------------------------------------------------------- 3. view URLs


def media_url(runtime: Runtime, tenant_id: int, value: object, *, expires: timedelta = VIEW_URL_EXPIRY) -> str | None:
    """The short-lived URL for a task data value ``"/media/<key>"`` of *this* tenant (a signed app
    URL on the local backend, a presigned URL on S3), or None when the value is not such a reference
    or the object does not exist. The key is always read relative to ``tenant_id``."""
    if not isinstance(value, str) or not value.startswith(MEDIA_PREFIX):
        return None
    key = value[len(MEDIA_PREFIX):].split("?", 1)[0].split("#", 1)[0]
    try:
        validate_key(key)
        return runtime.media.url_for(tenant_id, key, expires=expires)
    except (MediaKeyError, MediaNotFound):
        return None
    except MediaError:
        return None



THUMB_PREFIX = "thumbs/"


def thumbnail_url(runtime: Runtime, tenant_id: int, value: object) -> str | None:
    """A short-lived URL of a small JPEG/PNG thumbnail of an image task value ``"/media/<key>"``.

    Made once with Pillow (pixel-count limit against decompression bombs, EXIF orientation applied)
    and kept in the media store under ``thumbs/<key>``; None for anything that is not a readable image
    of this tenant (audio, a missing object, a bomb), so callers show the plain value instead.
    """
    if not isinstance(value, str) or not value.startswith(MEDIA_PREFIX):
        return None
    key = value[len(MEDIA_PREFIX):].split("?", 1)[0].split("#", 1)[0]
    try:
        validate_key(key)
        thumb_key = THUMB_PREFIX + key
        store = runtime.media
        if not store.exists(tenant_id, thumb_key):
            reader = store.open(tenant_id, key)
            if not (reader.content_type or "").startswith("image/"):
                return None
            with reader:
                data = make_thumbnail(reader, (160, 160))
            store.put(tenant_id, thumb_key, data, content_type=None)
        return store.url_for(tenant_id, thumb_key, expires=VIEW_URL_EXPIRY)
    except MediaError:  # ThumbnailError and ImageTooLarge included
        return None

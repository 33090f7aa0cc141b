"""The S3 backend (MinIO, AWS S3, or anything S3-compatible) through the minio SDK.

Object names are ``f"{tenant_id}/{key}"`` in one bucket. ``url_for`` presigns a GET with
``response-content-type`` / ``response-content-disposition`` overrides, so non-media objects are
downloaded as ``application/octet-stream`` attachments even straight from the bucket.

``open_writer`` streams into a multipart upload (``put_object`` with an unknown length and a fixed
``part_size``, fed from a bounded queue by a helper thread). S3 makes the object visible only when
the upload completes; on an exception the upload is aborted, so no object and no parts remain.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from workspace.media.content import (
    OCTET_STREAM,
    SNIFF_BYTES,
    normalize_content_type,
    serving_headers,
    sniff,
)
from workspace.media.errors import MediaError, MediaNotFound
from workspace.media.keys import object_key, object_prefix, tenant_segment
from workspace.media.store import (
    CHUNK_SIZE,
    DEFAULT_URL_EXPIRY,
    MediaReader,
    MediaStore,
    MediaWriter,
    StoredObject,
    check_expiry,
    prepare_upload,
)

if TYPE_CHECKING:
    from workspace.config import S3Settings

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "S3MediaStore"]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for all parts but the last
DEFAULT_PART_SIZE = 16 * 1024 * 1024  # 10,000 parts × 16 MiB ≈ 156 GiB per streamed object
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
_BACKEND_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


def _endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """``host:port`` for Minio; an ``http(s)://`` endpoint's scheme wins over ``secure``."""
    if "://" not in endpoint:
        return endpoint.rstrip("/"), secure
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or not parts.netloc:
        raise MediaError(f"S3 endpoint {endpoint!r}: use host:port or http(s)://host:port without a path")
    return parts.netloc, parts.scheme == "https"


class _UploadAborted(Exception):
    """Raised inside the upload thread so that minio aborts the multipart upload."""


_EOF = object()
_ABORT = object()


class _QueueReader:
    """The ``read()`` side that minio's ``put_object`` pulls from."""

    def __init__(self, chunks: queue.Queue) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        if self._eof:
            return b""
        while not self._buffer:
            item = self._chunks.get()
            if item is _EOF:
                self._eof = True
                return b""
            if item is _ABORT:
                raise _UploadAborted("the writer was aborted")
            self._buffer = memoryview(item)
        if size is None or size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        return data


class _S3Writer(MediaWriter):
    def __init__(self, client: Minio, bucket: str, name: str, content_type: str, part_size: int) -> None:
        super().__init__()
        self._chunks: queue.Queue = queue.Queue(maxsize=4)
        self._pending = bytearray()
        self._size = 0
        self._finished = False
        self._error: BaseException | None = None
        self._upload_result = None
        self._name = name

        def upload() -> None:
            try:
                self._upload_result = client.put_object(
                    bucket, name, _QueueReader(self._chunks), -1,  # type: ignore[arg-type]
                    content_type=content_type, part_size=part_size, num_parallel_uploads=1,
                )
            except BaseException as exc:  # noqa: BLE001 - reported to the writing thread
                self._error = exc

        self._thread = threading.Thread(target=upload, name="media-s3-upload", daemon=True)
        self._thread.start()

    @property
    def bytes_written(self) -> int:
        return self._size

    def _send(self, item: object) -> None:
        while True:
            if not self._thread.is_alive():
                raise MediaError(f"upload of {self._name!r} failed: {self._error}") from self._error
            try:
                self._chunks.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def write(self, data) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a finished media writer")
        view = memoryview(data).cast("B")
        self._pending += view
        self._size += view.nbytes
        while len(self._pending) >= CHUNK_SIZE:
            self._send(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]
        return view.nbytes

    def _commit(self):
        self._finished = True
        if self._pending:
            self._send(bytes(self._pending))
            self._pending.clear()
        self._send(_EOF)
        self._thread.join()
        if self._error is not None:
            raise MediaError(f"upload of {self._name!r} failed: {self._error}") from self._error
        return self._upload_result

    def _abort(self) -> None:
        self._finished = True
        self._pending.clear()
        while self._thread.is_alive():
            try:
                self._chunks.put(_ABORT, timeout=0.25)
                break
            except queue.Full:
                continue
        self._thread.join()  # minio has aborted the multipart upload when this returns

    def close(self) -> None:
        self._finished = True
        super().close()


class _Counting(io.RawIOBase):
    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size) or b""
        self.count += len(data)
        return data


class S3MediaStore(MediaStore):
    def __init__(self, client: Minio, bucket: str, *, part_size: int = DEFAULT_PART_SIZE,
                 presign_client: Minio | None = None) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.client = client
        # Presigned URLs carry the host they were signed for: the public endpoint's client signs them.
        self.presign_client = presign_client or client
        self.bucket = bucket
        self.part_size = part_size
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    @classmethod
    def from_settings(cls, s3: S3Settings, *, part_size: int = DEFAULT_PART_SIZE) -> S3MediaStore:
        endpoint, secure = _endpoint(s3.endpoint, s3.secure)
        client = Minio(endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=secure, region="us-east-1")
        presign = None
        if s3.public_endpoint:
            public, public_secure = _endpoint(s3.public_endpoint, s3.secure)
            # With the region given, signing needs no request to the (possibly unreachable) public host.
            presign = Minio(public, access_key=s3.access_key, secret_key=s3.secret_key, secure=public_secure,
                            region="us-east-1")
        return cls(client, s3.bucket, part_size=part_size, presign_client=presign)

    def __repr__(self) -> str:
        return f"S3MediaStore(bucket={self.bucket!r})"

    # -------------------------------------------------------------------------------- helpers
    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (once per store; done before the first write)."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket)
                    except S3Error as exc:
                        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            except _BACKEND_ERRORS as exc:
                raise MediaError(f"S3 bucket {self.bucket!r} is not usable: {exc}") from exc
            self._bucket_ready = True

    @staticmethod
    def _fail(exc: BaseException, tenant_id: int | str, key: str, action: str) -> MediaError:
        if isinstance(exc, S3Error) and exc.code in _NOT_FOUND_CODES:
            return MediaNotFound(tenant_id, key)
        if isinstance(exc, (ServerError, InvalidResponseError)) and getattr(exc, "status_code", None) == 404:
            return MediaNotFound(tenant_id, key)
        return MediaError(f"S3 {action} of {key!r} for tenant {tenant_id} failed: {exc}")

    # --------------------------------------------------------------------------------- writing
    def put(
        self,
        tenant_id: int | str,
        key: str,
        data: bytes | BinaryIO,
        content_type: str | None = None,
        size: int | None = None,
    ) -> StoredObject:
        name = object_key(tenant_id, key)
        stream, known, content_type = prepare_upload(data, content_type)
        if size is not None and known is not None and size != known:
            raise MediaError(f"size={size} but {known} bytes were given")
        length = size if size is not None else known
        self.ensure_bucket()
        counting = _Counting(stream)
        try:
            if length is None:
                result = self.client.put_object(
                    self.bucket, name, counting, -1, content_type=content_type,  # type: ignore[arg-type]
                    part_size=self.part_size, num_parallel_uploads=1,
                )
            else:
                result = self.client.put_object(
                    self.bucket, name, counting, length, content_type=content_type,  # type: ignore[arg-type]
                    num_parallel_uploads=1,
                )
        except _BACKEND_ERRORS as exc:
            raise self._fail(exc, tenant_id, key, "upload") from exc
        return StoredObject(tenant_id, key, counting.count, content_type, result.etag, None)

    def put_file(
        self, tenant_id: int | str, key: str, path: str | Path, content_type: str | None = None
    ) -> StoredObject:
        name = object_key(tenant_id, key)
        if content_type is None:
            with open(path, "rb") as f:
                content_type = sniff(f.read(SNIFF_BYTES)) or OCTET_STREAM
        content_type = normalize_content_type(content_type)
        self.ensure_bucket()
        size = os.path.getsize(path)
        try:
            result = self.client.fput_object(
                self.bucket, name, str(path), content_type=content_type, num_parallel_uploads=1
            )
        except _BACKEND_ERRORS as exc:
            raise self._fail(exc, tenant_id, key, "upload") from exc
        return StoredObject(tenant_id, key, size, content_type, result.etag, None)

    @contextmanager
    def open_writer(
        self, tenant_id: int | str, key: str, content_type: str = OCTET_STREAM
    ) -> Iterator[MediaWriter]:
        name = object_key(tenant_id, key)
        content_type = normalize_content_type(content_type)
        self.ensure_bucket()
        writer = _S3Writer(self.client, self.bucket, name, content_type, self.part_size)
        try:
            yield writer
        except BaseException:
            writer._abort()
            raise
        result = writer._commit()
        writer.result = StoredObject(tenant_id, key, writer.bytes_written, content_type, result.etag, None)

    # --------------------------------------------------------------------------------- reading
    def stat(self, tenant_id: int | str, key: str) -> StoredObject:
        name = object_key(tenant_id, key)
        try:
            info = self.client.stat_object(self.bucket, name)
        except _BACKEND_ERRORS as exc:
            raise self._fail(exc, tenant_id, key, "stat") from exc
        modified = info.last_modified
        if modified is not None and modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return StoredObject(
            tenant_id, key, int(info.size or 0), normalize_content_type(info.content_type),
            (info.etag or "").strip('"') or None, modified,
        )

    def open(self, tenant_id: int | str, key: str) -> MediaReader:
        name = object_key(tenant_id, key)
        try:
            response = self.client.get_object(self.bucket, name)
        except _BACKEND_ERRORS as exc:
            raise self._fail(exc, tenant_id, key, "download") from exc
        length = response.headers.get("Content-Length")

        def release() -> None:
            response.close()
            response.release_conn()

        return MediaReader(
            response,  # type: ignore[arg-type]
            size=int(length) if length and length.isdigit() else None,
            content_type=normalize_content_type(response.headers.get("Content-Type")),
            on_close=release,
        )

    def list_keys(self, tenant_id: int | str, prefix: str = "") -> Iterator[str]:
        full = object_prefix(tenant_id, prefix)
        strip = len(tenant_segment(tenant_id)) + 1
        try:
            names = [obj.object_name for obj in self.client.list_objects(self.bucket, prefix=full, recursive=True)]
        except _BACKEND_ERRORS as exc:
            if isinstance(exc, S3Error) and exc.code == "NoSuchBucket":
                return iter(())
            raise MediaError(f"S3 listing of {prefix!r} for tenant {tenant_id} failed: {exc}") from exc
        return iter(sorted(name[strip:] for name in names if name))

    # -------------------------------------------------------------------------------- deleting
    def delete(self, tenant_id: int | str, key: str) -> None:
        name = object_key(tenant_id, key)
        try:
            self.client.remove_object(self.bucket, name)
        except _BACKEND_ERRORS as exc:
            error = self._fail(exc, tenant_id, key, "delete")
            if not isinstance(error, MediaNotFound):
                raise error from exc

    def delete_prefix(self, tenant_id: int | str, prefix: str) -> int:
        full = object_prefix(tenant_id, prefix)
        count = 0

        def doomed() -> Iterator[DeleteObject]:
            nonlocal count
            for obj in self.client.list_objects(self.bucket, prefix=full, recursive=True):
                if obj.object_name:
                    count += 1
                    yield DeleteObject(obj.object_name)

        try:
            errors = list(self.client.remove_objects(self.bucket, doomed()))
        except _BACKEND_ERRORS as exc:
            if isinstance(exc, S3Error) and exc.code == "NoSuchBucket":
                return 0
            raise MediaError(f"S3 delete of prefix {prefix!r} for tenant {tenant_id} failed: {exc}") from exc
        if errors:
            raise MediaError(
                f"S3 delete of prefix {prefix!r} for tenant {tenant_id}: {len(errors)} objects not deleted "
                f"(first: {errors[0].name}: {errors[0].message})"
            )
        return count

    # ------------------------------------------------------------------------------------ URLs
    def url_for(
        self,
        tenant_id: int | str,
        key: str,
        *,
        expires: timedelta = DEFAULT_URL_EXPIRY,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str:
        name = object_key(tenant_id, key)
        check_expiry(expires)
        if content_type is None:
            content_type = self.stat(tenant_id, key).content_type
        headers = serving_headers(content_type, download_name)
        try:
            return self.presign_client.presigned_get_object(
                self.bucket,
                name,
                expires=expires,
                response_headers={
                    "response-content-type": headers.content_type,
                    "response-content-disposition": headers.content_disposition,
                },
            )
        except _BACKEND_ERRORS as exc:
            raise self._fail(exc, tenant_id, key, "presign") from exc

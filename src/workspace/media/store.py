"""The media store interface shared by the S3 and local-directory backends.

Every method takes the tenant id and a key relative to the tenant; the backend stores the object
under ``f"{tenant_id}/{key}"`` (see ``keys``). Nothing here takes a full object key from a caller.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from workspace.media.content import (
    OCTET_STREAM,
    SNIFF_BYTES,
    normalize_content_type,
    read_head,
    sniff,
)
from workspace.media.errors import MediaError

__all__ = [
    "CHUNK_SIZE",
    "PrependedStream",
    "DEFAULT_URL_EXPIRY",
    "MAX_URL_EXPIRY",
    "MediaReader",
    "MediaStore",
    "MediaWriter",
    "StoredObject",
    "check_expiry",
    "prepare_upload",
]

DEFAULT_URL_EXPIRY = timedelta(minutes=5)
MAX_URL_EXPIRY = timedelta(hours=24)
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    tenant_id: int | str
    key: str
    size: int
    content_type: str
    etag: str | None = None
    last_modified: datetime | None = None


class MediaReader(io.RawIOBase):
    """A read-only binary stream over a stored object; close it (or use ``with``).

    ``size`` and ``content_type`` come from the backend; ``iter_chunks()`` suits streaming responses.
    """

    def __init__(self, raw: BinaryIO, *, size: int | None, content_type: str, on_close=None) -> None:
        super().__init__()
        self._raw = raw
        self.size = size
        self.content_type = content_type
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed media reader")
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        return bytes(data or b"")

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._on_close is not None:
                self._on_close()
            else:
                self._raw.close()
        finally:
            super().close()


class MediaWriter(io.RawIOBase):
    """What ``open_writer`` yields: write bytes to it. The object appears only when the ``with``
    block exits without an exception; ``close()`` inside the block only ends writing.
    After a successful block, ``result`` is the ``StoredObject``."""

    result: StoredObject | None = None

    def writable(self) -> bool:
        return True

    @property
    def bytes_written(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


def check_expiry(expires: timedelta) -> timedelta:
    if not isinstance(expires, timedelta):
        raise TypeError("expires must be a datetime.timedelta")
    if expires < timedelta(seconds=1) or expires > MAX_URL_EXPIRY:
        raise MediaError(f"URL expiry must be between 1 second and {MAX_URL_EXPIRY}, got {expires}")
    return expires


class PrependedStream(io.RawIOBase):
    """``head`` followed by the rest of ``stream`` (after sniffing a non-seekable stream)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + (self._stream.read() or b""), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return (self._stream.read() if size is None or size < 0 else self._stream.read(size)) or b""

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)



def prepare_upload(
    data: bytes | bytearray | memoryview | BinaryIO, content_type: str | None
) -> tuple[BinaryIO, int | None, str]:
    """(stream, known size or None, content type). ``content_type=None`` means: sniff the bytes,
    and store an allowlisted media type or ``application/octet-stream``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        detected = content_type if content_type is not None else (sniff(raw[:SNIFF_BYTES]) or OCTET_STREAM)
        return io.BytesIO(raw), len(raw), normalize_content_type(detected)
    if not callable(getattr(data, "read", None)):
        raise TypeError("data must be bytes or a binary stream with read()")
    if content_type is not None:
        return data, None, normalize_content_type(content_type)
    head = read_head(data)
    return PrependedStream(head, data), None, sniff(head) or OCTET_STREAM  # type: ignore[return-value]


class MediaStore(abc.ABC):
    """Tenant-prefixed object storage. All keys are relative to the tenant (see ``keys``)."""

    @abc.abstractmethod
    def put(
        self,
        tenant_id: int | str,
        key: str,
        data: bytes | BinaryIO,
        content_type: str | None = None,
        size: int | None = None,
    ) -> StoredObject:
        """Store ``data`` (bytes or a binary stream) atomically, replacing any object at ``key``.

        ``content_type=None`` sniffs the first bytes (see ``content.sniff``): an allowlisted media
        type or ``application/octet-stream``; the client's claimed type should never be passed here.
        With ``size``, exactly that many bytes are read and a shorter stream raises ``MediaError``.
        """

    @abc.abstractmethod
    def put_file(
        self, tenant_id: int | str, key: str, path: str | Path, content_type: str | None = None
    ) -> StoredObject:
        """Store the file at ``path``."""

    @abc.abstractmethod
    def open(self, tenant_id: int | str, key: str) -> MediaReader:
        """A streaming reader; raises ``MediaNotFound``."""

    @abc.abstractmethod
    def stat(self, tenant_id: int | str, key: str) -> StoredObject:
        """Size, content type, etag; raises ``MediaNotFound``."""

    @abc.abstractmethod
    def delete(self, tenant_id: int | str, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abc.abstractmethod
    def delete_prefix(self, tenant_id: int | str, prefix: str) -> int:
        """Remove every object of the tenant whose key starts with ``prefix`` (a plain string
        prefix, as in S3; ``""`` means all of the tenant's objects). Returns how many."""

    @abc.abstractmethod
    def list_keys(self, tenant_id: int | str, prefix: str = "") -> Iterator[str]:
        """Keys (relative to the tenant) starting with ``prefix``, in no promised order."""

    def exists(self, tenant_id: int | str, key: str) -> bool:
        from workspace.media.errors import MediaNotFound

        try:
            self.stat(tenant_id, key)
        except MediaNotFound:
            return False
        return True

    def read_bytes(self, tenant_id: int | str, key: str) -> bytes:
        """The whole object in memory: for small objects only."""
        with self.open(tenant_id, key) as reader:
            return reader.read()

    @abc.abstractmethod
    def url_for(
        self,
        tenant_id: int | str,
        key: str,
        *,
        expires: timedelta = DEFAULT_URL_EXPIRY,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A short-lived URL that serves the object.

        Allowlisted image/audio types are served inline with their type; everything else, and any
        request with ``download_name``, as an attachment (non-media as ``application/octet-stream``).
        ``content_type`` is the stored type if the caller knows it (saves a ``stat``).
        """

    @abc.abstractmethod
    def open_writer(
        self, tenant_id: int | str, key: str, content_type: str = OCTET_STREAM
    ) -> AbstractContextManager[MediaWriter]:
        """Stream a large object in (exports). Memory stays bounded; the object becomes visible
        only when the ``with`` block exits without an exception, and an exception leaves neither
        the object nor any temporary object behind (an existing object at ``key`` is kept)."""

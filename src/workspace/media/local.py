"""The local-directory backend (embedded mode): ``<media_dir>/<tenant_id>/<key>``.

Writes go to a temp file beside the target and are ``os.replace``d into place, so a reader sees the
old object or the new one, never a half-written one. The content type and MD5 etag live in a hidden
sidecar file (``.<name>.meta``); names starting with ``.`` are not valid keys, so no caller can address
the sidecars or temp files.

Downloads go through an app route: ``url_for`` returns ``/media/<tenant_id>/<key>?exp=…&disp=…&sig=…``
(plus ``name=…`` for a download name), signed with HMAC-SHA256 under a key derived from the app's
secret key; the route calls ``resolve_signed`` (or ``verify_signed``) and streams ``local_path``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from workspace.media.content import (
    OCTET_STREAM,
    SNIFF_BYTES,
    normalize_content_type,
    safe_download_name,
    serving_headers,
    sniff,
)
from workspace.media.errors import MediaError, MediaKeyError, MediaNotFound
from workspace.media.keys import tenant_segment, validate_key, validate_prefix
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

__all__ = ["LocalMediaStore", "SignedMedia"]

_SIGNING_CONTEXT = b"workspace.media.signed-url.v1"
_DISPOSITIONS = frozenset({"inline", "attachment"})


def _meta_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.meta")


def _now_ts(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.timestamp()
    return float(now)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SignedMedia:
    """What a verified ``/media/…`` request may serve, and the headers to serve it with."""

    path: Path
    size: int
    content_type: str
    content_disposition: str
    etag: str | None
    expires_at: int
    headers: dict[str, str] = field(default_factory=dict)


class _LocalWriter(MediaWriter):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._finished = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except (NotADirectoryError, FileExistsError) as exc:
            raise MediaError(f"cannot create {path.name!r}: a parent of the key is an object, not a folder") from exc
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0

    @property
    def bytes_written(self) -> int:
        return self._size

    def write(self, data) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a finished media writer")
        view = memoryview(data).cast("B")
        self._file.write(view)
        self._md5.update(view)
        self._size += view.nbytes
        return view.nbytes

    def _commit(self, content_type: str) -> tuple[int, str]:
        self._finished = True
        try:
            if self._path.is_dir():
                raise MediaError(f"cannot store {self._path.name!r}: a folder of other keys has that name")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            etag = self._md5.hexdigest()
            meta = _meta_path(self._path)
            meta_tmp = meta.with_name(f"{meta.name}.{self._tmp.name}")
            meta_tmp.write_text(json.dumps({"content_type": content_type, "etag": etag, "size": self._size}))
            try:
                # Metadata first: a crash in between leaves a sidecar whose object is older, never
                # a new object without its content type.
                os.replace(meta_tmp, meta)
            except BaseException:
                meta_tmp.unlink(missing_ok=True)
                raise
            try:
                os.replace(self._tmp, self._path)
            except IsADirectoryError as exc:
                raise MediaError(f"cannot store {self._path.name!r}: a folder of other keys has that name") from exc
            _fsync_dir(self._path.parent)
            return self._size, etag
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        self._finished = True
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def close(self) -> None:
        # Ends writing only; the context manager commits or aborts.
        self._finished = True
        super().close()


def _copy_into(source: BinaryIO, writer: MediaWriter, size: int | None) -> None:
    remaining = size
    while remaining is None or remaining > 0:
        chunk = source.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
        if not chunk:
            break
        writer.write(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    if remaining:
        raise MediaError(f"the stream ended after {size - remaining} of the {size} bytes announced")


class LocalMediaStore(MediaStore):
    def __init__(self, root: str | Path, *, secret_key: str, url_prefix: str = "/media") -> None:
        if not secret_key:
            raise ValueError("LocalMediaStore needs the app's secret key to sign URLs")
        self.root = Path(root)
        self.url_prefix = url_prefix.rstrip("/")
        self._signing_key = hmac.new(secret_key.encode("utf-8"), _SIGNING_CONTEXT, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"LocalMediaStore({str(self.root)!r})"

    # ------------------------------------------------------------------------------------ paths
    def _tenant_root(self, tenant_id: int | str) -> Path:
        return self.root.resolve() / tenant_segment(tenant_id)

    def local_path(self, tenant_id: int | str, key: str) -> Path:
        """The file for ``key``; refuses (``MediaKeyError``) anything that resolves outside the
        tenant's folder, e.g. through a symlink."""
        validate_key(key)
        tenant_root = self._tenant_root(tenant_id)
        path = (tenant_root / key).resolve()
        if path == tenant_root or not path.is_relative_to(tenant_root):
            raise MediaKeyError(f"media key {key!r} resolves outside the tenant's folder")
        return path

    def _read_meta(self, path: Path) -> dict:
        try:
            meta = json.loads(_meta_path(path).read_text())
            return meta if isinstance(meta, dict) else {}
        except (OSError, ValueError):
            return {}

    # --------------------------------------------------------------------------------- writing
    @contextmanager
    def open_writer(
        self, tenant_id: int | str, key: str, content_type: str = OCTET_STREAM
    ) -> Iterator[MediaWriter]:
        path = self.local_path(tenant_id, key)
        content_type = normalize_content_type(content_type)
        writer = _LocalWriter(path)
        try:
            yield writer
        except BaseException:
            writer._abort()
            raise
        size, etag = writer._commit(content_type)
        writer.result = StoredObject(tenant_id, key, size, content_type, etag, self._mtime(path))

    def put(
        self,
        tenant_id: int | str,
        key: str,
        data: bytes | BinaryIO,
        content_type: str | None = None,
        size: int | None = None,
    ) -> StoredObject:
        self.local_path(tenant_id, key)  # validate before reading anything
        stream, known, content_type = prepare_upload(data, content_type)
        if size is not None and known is not None and size != known:
            raise MediaError(f"size={size} but {known} bytes were given")
        with self.open_writer(tenant_id, key, content_type) as writer:
            _copy_into(stream, writer, size)
        assert writer.result is not None
        return writer.result

    def put_file(
        self, tenant_id: int | str, key: str, path: str | Path, content_type: str | None = None
    ) -> StoredObject:
        self.local_path(tenant_id, key)
        with open(path, "rb") as source:
            return self.put(tenant_id, key, source, content_type)

    # --------------------------------------------------------------------------------- reading
    @staticmethod
    def _mtime(path: Path) -> datetime | None:
        try:
            return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        except OSError:
            return None

    def stat(self, tenant_id: int | str, key: str) -> StoredObject:
        path = self.local_path(tenant_id, key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise MediaNotFound(tenant_id, key) from None
        if not path.is_file():
            raise MediaNotFound(tenant_id, key)
        meta = self._read_meta(path)
        content_type = meta.get("content_type")
        if not isinstance(content_type, str):
            with open(path, "rb") as f:
                content_type = sniff(f.read(SNIFF_BYTES)) or OCTET_STREAM
        etag = meta.get("etag") if meta.get("size") == st.st_size else None
        return StoredObject(
            tenant_id, key, st.st_size, content_type, etag, datetime.fromtimestamp(st.st_mtime, tz=UTC)
        )

    def open(self, tenant_id: int | str, key: str) -> MediaReader:
        info = self.stat(tenant_id, key)
        path = self.local_path(tenant_id, key)
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the MediaReader
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise MediaNotFound(tenant_id, key) from None
        return MediaReader(raw, size=os.fstat(raw.fileno()).st_size, content_type=info.content_type)

    def list_keys(self, tenant_id: int | str, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        tenant_root = self._tenant_root(tenant_id)
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = (tenant_root / folder).resolve() if folder else tenant_root
        if not start.is_relative_to(tenant_root) or not start.is_dir():
            return iter(())
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                rel = (Path(dirpath) / name).relative_to(tenant_root).as_posix()
                if rel.startswith(prefix):
                    found.append(rel)
        return iter(sorted(found))

    # -------------------------------------------------------------------------------- deleting
    def delete(self, tenant_id: int | str, key: str) -> None:
        path = self.local_path(tenant_id, key)
        if path.is_dir():
            return
        try:
            path.unlink(missing_ok=True)
            _meta_path(path).unlink(missing_ok=True)
        except NotADirectoryError:
            return

    def delete_prefix(self, tenant_id: int | str, prefix: str) -> int:
        keys = list(self.list_keys(tenant_id, prefix))
        for key in keys:
            self.delete(tenant_id, key)
        # Best effort: drop folders the deletion emptied (a concurrent writer may recreate them).
        tenant_root = self._tenant_root(tenant_id)
        folders = {(tenant_root / key).parent for key in keys}
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            current = folder
            while current != tenant_root and current.is_relative_to(tenant_root):
                try:
                    current.rmdir()
                except OSError:
                    break
                current = current.parent
        return len(keys)

    # ---------------------------------------------------------------------------- signed URLs
    def _sign(self, tenant: str, key: str, exp: int, disposition: str, download_name: str | None) -> str:
        message = json.dumps([tenant, key, exp, disposition, download_name or ""], separators=(",", ":"))
        digest = hmac.new(self._signing_key, message.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def url_for(
        self,
        tenant_id: int | str,
        key: str,
        *,
        expires: timedelta = DEFAULT_URL_EXPIRY,
        download_name: str | None = None,
        content_type: str | None = None,
        now: float | datetime | None = None,
    ) -> str:
        tenant = tenant_segment(tenant_id)
        validate_key(key)
        check_expiry(expires)
        if content_type is None:
            content_type = self.stat(tenant_id, key).content_type
        headers = serving_headers(content_type, download_name)
        name = safe_download_name(download_name)
        exp = math.ceil(_now_ts(now) + expires.total_seconds())
        query = {"exp": str(exp), "disp": headers.disposition}
        if name:
            query["name"] = name
        query["sig"] = self._sign(tenant, key, exp, headers.disposition, name)
        return f"{self.url_prefix}/{tenant}/{quote(key, safe='/')}?{urlencode(query)}"

    def verify_signed(
        self,
        path_tenant: str | int,
        key: str,
        exp: str | int,
        sig: str,
        now: float | datetime | None = None,
        *,
        disposition: str = "attachment",
        download_name: str | None = None,
    ) -> bool:
        """True if ``sig`` is this store's signature of (tenant, key, exp, disposition, name) and
        ``exp`` has not passed. Pass the route's path parameters and the ``exp``, ``sig``,
        ``disp`` and ``name`` query parameters as they arrived. Compares in constant time."""
        try:
            tenant = tenant_segment(path_tenant)
            validate_key(key)
            if isinstance(exp, bool):
                return False
            if isinstance(exp, str):
                if not exp.isascii() or not exp.isdigit() or len(exp) > 12:
                    return False
                exp = int(exp)
            if not isinstance(exp, int) or exp < 0:
                return False
            if disposition not in _DISPOSITIONS:
                return False
            if not isinstance(sig, str):
                return False
            given = sig.encode("ascii")
        except (MediaKeyError, UnicodeEncodeError, ValueError, TypeError):
            return False
        expected = self._sign(tenant, key, exp, disposition, download_name).encode("ascii")
        valid = hmac.compare_digest(expected, given)
        return valid and _now_ts(now) <= exp

    def resolve_signed(
        self,
        path_tenant: str | int,
        key: str,
        query: Mapping[str, str],
        now: float | datetime | None = None,
    ) -> SignedMedia | None:
        """For the ``/media/{tenant}/{key:path}`` route: None when the URL is not valid (answer 404
        or 403), else what to serve. Raises ``MediaNotFound`` if the object is gone."""
        exp, sig = query.get("exp"), query.get("sig")
        disposition = query.get("disp", "attachment")
        name = query.get("name") or None
        if exp is None or sig is None:
            return None
        if not self.verify_signed(path_tenant, key, exp, sig, now, disposition=disposition, download_name=name):
            return None
        info = self.stat(path_tenant, key)
        headers = serving_headers(info.content_type, name, disposition=disposition)  # type: ignore[arg-type]
        max_age = max(0, int(int(exp) - _now_ts(now)))
        return SignedMedia(
            path=self.local_path(path_tenant, key),
            size=info.size,
            content_type=headers.content_type,
            content_disposition=headers.content_disposition,
            etag=info.etag,
            expires_at=int(exp),
            headers={
                "Content-Type": headers.content_type,
                "Content-Disposition": headers.content_disposition,
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": f"private, max-age={max_age}",
            },
        )

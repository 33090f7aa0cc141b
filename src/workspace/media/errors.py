"""The media store's errors. Every one is a ``MediaError``."""

from __future__ import annotations

__all__ = ["ImageTooLarge", "MediaError", "MediaKeyError", "MediaNotFound", "ThumbnailError"]


class MediaError(Exception):
    """A media store operation failed (backend error, size mismatch, ...)."""


class MediaKeyError(MediaError, ValueError):
    """A tenant id, key or prefix was refused before any I/O happened."""


class MediaNotFound(MediaError, LookupError):
    """No object under that key for that tenant (another tenant's object looks exactly like this)."""

    def __init__(self, tenant_id: object, key: str) -> None:
        super().__init__(f"no media object {key!r} for tenant {tenant_id}")
        self.tenant_id = tenant_id
        self.key = key


class ThumbnailError(MediaError):
    """The data is not an image Pillow can read, or it could not be thumbnailed."""


class ImageTooLarge(ThumbnailError):
    """The image declares more pixels than allowed (decompression bomb guard)."""

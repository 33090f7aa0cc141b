"""The media store: S3 (minio SDK) and local-directory backends, short-lived URLs, content sniffing,
thumbnails. Keys are always stored as ``f"{tenant_id}/{key}"``; callers never pass the prefix.

Only this package imports minio; it imports no web code.
"""

from workspace.media.errors import (
    ImageTooLarge,
    MediaError,
    MediaKeyError,
    MediaNotFound,
    ThumbnailError,
)
from workspace.media.factory import media_store_from_settings
from workspace.media.store import MediaReader, MediaStore, MediaWriter, StoredObject

__all__ = [
    "ImageTooLarge",
    "MediaError",
    "MediaKeyError",
    "MediaNotFound",
    "MediaReader",
    "MediaStore",
    "MediaWriter",
    "StoredObject",
    "ThumbnailError",
    "media_store_from_settings",
]

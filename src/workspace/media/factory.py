"""Pick the media backend from the settings: S3 when ``settings.s3`` is set, else the local folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workspace.media.store import MediaStore

if TYPE_CHECKING:
    from workspace.config import Settings

__all__ = ["media_store_from_settings"]


def media_store_from_settings(settings: Settings) -> MediaStore:
    if settings.s3 is not None:
        from workspace.media.s3 import (
            S3MediaStore,  # minio is loaded only when S3 is configured
        )

        return S3MediaStore.from_settings(settings.s3)
    from workspace.media.local import LocalMediaStore

    return LocalMediaStore(settings.media_dir, secret_key=settings.secret_key)

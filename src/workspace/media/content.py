"""What a media object *is* (by its bytes, never by the client's word), how to serve it, thumbnails.

Only the types in ``INLINE_MEDIA_TYPES`` are ever served inline, with their own content type. All
else (HTML, SVG, PDF, JSON exports, unknown bytes) is served as an attachment with
``application/octet-stream``, so an upload can't become a page on the app's origin.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Literal
from urllib.parse import quote

from workspace.media.errors import ImageTooLarge, ThumbnailError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INLINE_MEDIA_TYPES",
    "OCTET_STREAM",
    "SNIFF_BYTES",
    "read_head",
    "ServingHeaders",
    "content_disposition",
    "is_inline_media",
    "make_thumbnail",
    "normalize_content_type",
    "safe_download_name",
    "serving_headers",
    "sniff",
    "sniff_content_type",
]

OCTET_STREAM = "application/octet-stream"
SNIFF_BYTES = 512

# Canonical types the sniffer returns.
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"})
_AUDIO_TYPES = frozenset(
    {"audio/mpeg", "audio/wav", "audio/ogg", "audio/flac", "audio/mp4", "audio/aac", "audio/webm"}
)
# Aliases clients and libraries use for the same formats.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/aacp": "audio/aac",
}
INLINE_MEDIA_TYPES = _IMAGE_TYPES | _AUDIO_TYPES

# ISO base media brands that are audio (or audio-capable video) containers browsers play; HEIF
# ("heic", "mif1", ...) and other ftyp files are not on the list.
_MP4_BRANDS = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"dash", b"avc1"}
)
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _is_mpeg_audio_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate not in (0b0000, 0b1111) and sample_rate != 0b11


def _is_adts_aac(head: bytes) -> bool:
    # 12-bit sync, layer bits 00, sampling index below 13.
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0x0F < 13


def sniff(head: bytes) -> str | None:
    """The allowlisted media type of data starting with ``head`` (give it ``SNIFF_BYTES``), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        if head[8:12] == b"WEBP":
            return "image/webp"
        if head[8:12] == b"WAVE":
            return "audio/wav"
        return None
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:3] == b"ID3":
        return "audio/mpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _MP4_BRANDS:
        return "audio/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML: WebM, not other Matroska. The DocType element (0x4282) sits in the first bytes.
        index = head.find(b"\x42\x82")
        if index != -1 and head[index + 3 : index + 7] == b"webm":
            return "audio/webm"
        return None
    if _is_adts_aac(head):
        return "audio/aac"
    if _is_mpeg_audio_frame(head):
        return "audio/mpeg"
    return None


def sniff_content_type(data: bytes | BinaryIO) -> str:
    """The sniffed media type, or ``application/octet-stream``. A seekable stream is rewound."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        head = bytes(data[:SNIFF_BYTES])
    else:
        position = data.tell()
        head = data.read(SNIFF_BYTES)
        data.seek(position)
    return sniff(head) or OCTET_STREAM


def normalize_content_type(content_type: str | None) -> str:
    """Lowercase, without parameters, aliases mapped to canonical names; empty means octet-stream."""
    if not content_type:
        return OCTET_STREAM
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base) or OCTET_STREAM


def is_inline_media(content_type: str | None) -> bool:
    """True for the image/audio types that may be served inline under their own content type."""
    return normalize_content_type(content_type) in INLINE_MEDIA_TYPES


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')


def safe_download_name(name: str | None) -> str | None:
    """A file name fit for Content-Disposition: no path, no control characters, no quotes, ≤150 chars."""
    if name is None:
        return None
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    if len(name) > 150:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 150 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:150]
    return name or None


def content_disposition(disposition: Literal["inline", "attachment"], download_name: str | None = None) -> str:
    """RFC 6266 header value with an ASCII fallback ``filename`` and a UTF-8 ``filename*``."""
    name = safe_download_name(download_name)
    if not name:
        return disposition
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


@dataclass(frozen=True)
class ServingHeaders:
    content_type: str
    content_disposition: str
    disposition: Literal["inline", "attachment"]


def serving_headers(
    stored_content_type: str | None,
    download_name: str | None = None,
    *,
    disposition: Literal["inline", "attachment"] | None = None,
) -> ServingHeaders:
    """How to serve an object: inline with its type only for allowlisted media, else an
    ``application/octet-stream`` attachment. A ``download_name`` or ``disposition="attachment"``
    asks for an attachment; nothing can ask for a non-media object to be inline."""
    media = is_inline_media(stored_content_type)
    if disposition is None:
        disposition = "attachment" if download_name else "inline"
    if not media:
        disposition = "attachment"
    content_type = normalize_content_type(stored_content_type) if media else OCTET_STREAM
    return ServingHeaders(content_type, content_disposition(disposition, download_name), disposition)


# ---------------------------------------------------------------------------------------- thumbnails

DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels; below Pillow's own 89M warning threshold


def make_thumbnail(
    stream: BinaryIO | bytes,
    max_size: tuple[int, int] = (256, 256),
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    output_format: Literal["JPEG", "PNG"] | None = None,
) -> bytes:
    """A thumbnail no larger than ``max_size``, upright per its EXIF orientation, without metadata.

    JPEG unless the image has transparency (then PNG), or ``output_format``. An image declaring more
    than ``max_pixels`` pixels is refused with ``ImageTooLarge`` before any pixel is decoded;
    anything Pillow can't read raises ``ThumbnailError``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(stream, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(stream))
    width_max, height_max = max_size
    if width_max < 1 or height_max < 1:
        raise ValueError(f"max_size must be positive, got {max_size!r}")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning becomes an error too (in case max_pixels exceeds its limit).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"image is {width}x{height} = {width * height} pixels, more than the "
                        f"{max_pixels} allowed (possible decompression bomb); refusing to decode it"
                    )
                if image.format == "JPEG":
                    # Decode at a reduced scale; enough for either orientation.
                    side = max(max_size)
                    image.draft("RGB", (side, side))
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail(max_size, Image.Resampling.LANCZOS)
                has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
                    upright.mode == "P" and "transparency" in upright.info
                )
                fmt = output_format or ("PNG" if has_alpha else "JPEG")
                if fmt == "JPEG":
                    result = upright.convert("RGB")
                else:
                    result = upright.convert("RGBA") if has_alpha else upright.convert("RGB")
                out = io.BytesIO()
                if fmt == "JPEG":
                    result.save(out, "JPEG", quality=85, optimize=True)
                else:
                    result.save(out, "PNG", optimize=True)
                return out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image refused as a possible decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ThumbnailError("not an image format that can be thumbnailed") from exc
    except ImageTooLarge:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ThumbnailError(f"the image could not be decoded: {exc}") from exc


def read_head(stream: BinaryIO) -> bytes:
    """Up to ``SNIFF_BYTES`` from a stream, however short its reads are."""
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head

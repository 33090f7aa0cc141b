"""Random secrets, their stored digests (tokens are high-entropy, so SHA-256 is the right hash), and
secrets sealed at rest for the few that must be used again in clear (a webhook's signing secret).

Sealing is AES-256-GCM with a key derived from the application's secret key and a purpose
(HMAC-SHA256, so each purpose has its own key), a random 96-bit nonce, and a context (e.g. the
tenant) as associated data, so a sealed value copied to another tenant's row does not open. The
stored form is ``sealed1:`` + base64url(nonce || ciphertext || tag). A secret of the shape
``<prefix>`` + ``token_urlsafe(32)`` is sealed as its 32 random bytes, which keeps the stored form
under 100 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as _secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["new_secret", "digest", "digest_matches", "seal", "unseal", "is_sealed", "SealError", "SEALED_PREFIX"]

SEALED_PREFIX = "sealed1:"
_TOKEN = re.compile(r"^([a-z]{1,6}_)([A-Za-z0-9_-]{43})$")  # a prefix and token_urlsafe(32)


class SealError(ValueError):
    """A sealed value that does not open: another key, another context, or damaged."""


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{_secrets.token_urlsafe(nbytes)}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def digest_matches(value: str, stored: str) -> bool:
    return hmac.compare_digest(digest(value), stored)


def _key(app_key: str, purpose: str) -> bytes:
    if not app_key:
        raise SealError("no application secret key to seal with")
    context = b"workspace-seal-v1\x00" + purpose.encode("utf-8")
    return hmac.new(app_key.encode("utf-8"), context, hashlib.sha256).digest()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pack(value: str) -> bytes:
    match = _TOKEN.match(value)
    if match:
        raw = _b64decode(match.group(2))
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == match.group(2):
            prefix = match.group(1).encode("ascii")
            return b"\x01" + bytes([len(prefix)]) + prefix + raw
    return b"\x00" + value.encode("utf-8")


def _unpack(data: bytes) -> str:
    if data[:1] == b"\x01":
        size = data[1]
        prefix, raw = data[2:2 + size].decode("ascii"), data[2 + size:]
        return prefix + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return data[1:].decode("utf-8")


def is_sealed(stored: str | None) -> bool:
    return bool(stored) and stored.startswith(SEALED_PREFIX)  # type: ignore[union-attr]


def seal(app_key: str, purpose: str, value: str, context: str = "") -> str:
    """``value`` encrypted for storage (see the module docstring); :func:`unseal` gives it back."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key(app_key, purpose)).encrypt(nonce, _pack(value), context.encode("utf-8"))
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def unseal(app_key: str, purpose: str, stored: str, context: str = "") -> str:
    """The value :func:`seal` sealed with the same key, purpose and context; else :class:`SealError`."""
    if not is_sealed(stored):
        raise SealError("not a sealed value")
    try:
        blob = _b64decode(stored[len(SEALED_PREFIX):])
        data = AESGCM(_key(app_key, purpose)).decrypt(blob[:12], blob[12:], context.encode("utf-8"))
        return _unpack(data)
    except (InvalidTag, binascii.Error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise SealError("the sealed value does not open with this key and context") from exc

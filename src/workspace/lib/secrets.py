"""Random secrets and their stored digests (tokens are high-entropy, so SHA-256 is the right hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

__all__ = ["new_secret", "digest", "digest_matches"]


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{_secrets.token_urlsafe(nbytes)}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def digest_matches(value: str, stored: str) -> bool:
    return hmac.compare_digest(digest(value), stored)

"""Identity: password hashing (argon2id), password checks, API token minting and lookup."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from workspace.tenancy.errors import Invalid

__all__ = ["hash_password", "verify_password", "needs_rehash", "check_password_policy", "DUMMY_HASH"]

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
DUMMY_HASH = _hasher.hash("not-a-real-password: equalizes timing for unknown accounts")

MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def check_password_policy(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"Use at least {MIN_LENGTH} characters.", field=field)
    if len(password) > 1024:
        raise Invalid("Use at most 1024 characters.", field=field)

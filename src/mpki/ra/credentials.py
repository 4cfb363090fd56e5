"""Credentials: API tokens (shown once, stored as SHA-256) and argon2 password hashes."""

from __future__ import annotations

import base64
import hashlib
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "mpki_"
_hasher = PasswordHasher()


def new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def token_digest(token: str) -> str:
    """Tokens have 256 bits of entropy, so a fast hash is enough: nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False

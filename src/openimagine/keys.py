"""API keys: generated once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "oi_"


def generate_key() -> str:
    """A new random key, e.g. `oi_3q9...`."""
    return PREFIX + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    """The stored form of a key (keys are high-entropy, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The shown part of a key, for listing and revoking."""
    return key[:10]

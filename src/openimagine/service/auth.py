"""API keys: generated once, shown once, stored only as a SHA-256 hash; and the check of a
presented key, cached briefly."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from openimagine.errors import AuthError
from openimagine.store.protocols import KeyStore

PREFIX = "oi_"
# A revoked key stops working within this long; an open WebSocket checks its key twice a
# second (`api.runware`), so there too within 5 s.
_CACHE_S = 4.0


def generate_key() -> str:
    """A new random key, e.g. `oi_3q9...`."""
    return PREFIX + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    """The stored form of a key (keys are high-entropy, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


_SHOWN = 10  # characters a listing shows of a long key
_LONG = 32  # a key this long keeps enough secret after its first `_SHOWN` characters


def key_prefix(key: str) -> str:
    """The shown part of a key, for listing and revoking: the first characters of a long key
    (every generated key is), and for a shorter one (given with `--api-key`) a digest that
    reveals none of it."""
    return key[:_SHOWN] if len(key) >= _LONG else "#" + hash_key(key)[:8]


class Authenticator:
    """Turns a presented API key into its owner id."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._cache: dict[str, tuple[str, float]] = {}

    async def owner(self, api_key: Any) -> str:
        """The owner id of a valid key; `AuthError` otherwise."""
        if not isinstance(api_key, str) or not api_key:
            raise AuthError("Missing API key.", code="missingApiKey", parameter="apiKey")
        digest = hash_key(api_key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _CACHE_S:
            return cached[0]
        owner = await self.keys.find(digest)
        if owner is None:
            self._cache.pop(digest, None)
            raise AuthError("Invalid API key.", parameter="apiKey")
        self._cache[digest] = (owner, now)
        return owner

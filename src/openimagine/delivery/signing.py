"""HMAC-signed, expiring URLs for the local blob store."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


class UrlSigner:
    """Signs `(path, expiry)` pairs; a tampered path or expiry, or a past expiry, fails."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def signature(self, path: str, expires: int) -> str:
        """URL-safe HMAC-SHA256 of the path and expiry."""
        mac = hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def url(self, path: str, expires: float) -> str:
        """Absolute signed URL for `path` (which starts with /) valid until `expires`."""
        exp = int(expires)
        return f"{self.base_url}{quote(path)}?exp={exp}&sig={self.signature(path, exp)}"

    def verify(self, path: str, expires: int, signature: str, now: float) -> bool:
        """Whether the signature matches and has not expired (constant-time compare)."""
        # A real signature is URL-safe base64; anything else (a forged one can hold any text,
        # even a lone surrogate that cannot be encoded) fails without being compared.
        if not signature.isascii():
            return False
        expected = self.signature(path, expires).encode()
        # Bytes, since compare_digest refuses non-ASCII str.
        return hmac.compare_digest(expected, signature.encode()) and now < expires

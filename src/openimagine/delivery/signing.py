"""HMAC-signed, expiring URLs for the local blob store."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote, unquote, urlsplit


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

    def path_of(self, url: str, now: float) -> str | None:
        """The path of a URL this signer made, while its signature holds and it has not
        expired; None for any other URL."""
        if not url.startswith(self.base_url + "/"):
            return None
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        exp, sig = query.get("exp", [""])[0], query.get("sig", [""])[0]
        path = unquote(parts.path)
        if not exp.isdigit() or not self.verify(path, int(exp), sig, now):
            return None
        return path

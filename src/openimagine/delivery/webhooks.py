"""Standard Webhooks signatures and the retry schedule of outbound deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from dataclasses import dataclass


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a delivery is tried."""

    max_attempts: int = 8
    backoff_s: float = 2.0
    backoff_max_s: float = 600.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next try after `attempts` tries: doubling, with jitter so that
        many deliveries failing together do not come back together."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** (attempts - 1))
        delay = base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

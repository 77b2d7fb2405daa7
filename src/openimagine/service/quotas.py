"""What each key may use: its limits (the settings, overridden per key, cached briefly), a
rate limit on its requests, the quotas its submits are admitted under, and a cheap look at
them before a submit's inputs are fetched."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from openimagine.config import QuotaSettings
from openimagine.domain.quotas import Admission, Limits, utc_day
from openimagine.errors import QuotaExceeded
from openimagine.store.protocols import KeyStore, UsageStore
from openimagine.store.quotas import over_budget, queue_full

_CACHE_S = 5.0  # a changed limit applies within this long (as a revoked key stops working)
_WINDOW_S = 60.0


def defaults(settings: QuotaSettings) -> Limits:
    """The server-wide limits."""
    return Limits(
        max_queued=settings.max_queued_per_key,
        max_running=settings.max_running_per_key,
        requests_per_minute=settings.requests_per_minute,
        daily_budget_usd=settings.daily_budget_usd,
    )


class Quotas:
    """Each key's effective limits and its request rate, in this process."""

    def __init__(
        self,
        keys: KeyStore,
        settings: QuotaSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        usage: UsageStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.usage = usage
        self.defaults = defaults(settings)
        self.clock = clock
        self.wall_clock = wall_clock
        self._limits: dict[str, tuple[Limits, float]] = {}
        self._next: dict[str, float] = {}  # GCRA: when each key's next request is due

    async def limits(self, owner: str) -> Limits:
        """The key's limits: its overrides over the settings."""
        now = self.clock()
        cached = self._limits.get(owner)
        if cached is not None and now - cached[1] < _CACHE_S:
            return cached[0]
        limits = (await self.keys.limits(owner)).over(self.defaults)
        self._limits[owner] = (limits, now)
        return limits

    async def admission(self, owner: str) -> Admission:
        """The quotas the store checks a submit of this key against."""
        limits = await self.limits(owner)
        return Admission(limits.max_queued or 0, limits.daily_budget_usd or 0.0)

    async def precheck(self, owner: str, cost: float) -> None:
        """Refuse now a submit of at least `cost` dollars that its key's queue limit or daily
        budget would refuse at insert: `QuotaExceeded`, before any of its inputs is fetched
        or decoded. The store's check at insert stays the exact one (this read may be a
        moment old)."""
        admission = await self.admission(owner)
        if self.usage is None or not admission.any:
            return
        now = self.wall_clock()
        queued, spent = await self.usage.standing(owner, utc_day(now))
        if admission.max_queued and queued >= admission.max_queued:
            raise queue_full(admission.max_queued)
        budget = admission.daily_budget_usd
        if budget and spent + cost > budget + 1e-9:  # the store's tolerance
            raise over_budget(budget, spent, cost, now)

    async def count_request(self, owner: str) -> None:
        """Count one request of the key; `QuotaExceeded` (the request is not served) past
        `requests_per_minute` in any 60 s."""
        limit = (await self.limits(owner)).requests_per_minute
        if not limit:
            return
        # perf: GCRA, one number per key: requests are due `interval` apart, and a burst may
        # run up to a minute ahead of that schedule.
        now, interval = self.clock(), _WINDOW_S / limit
        due = max(self._next.get(owner, now), now)
        ahead = due + interval - now
        if ahead > _WINDOW_S + 1e-9:
            wait = ahead - _WINDOW_S
            raise QuotaExceeded(
                f"This key sent more than {limit} requests in a minute; retry in "
                f"{math.ceil(wait)} s.",
                code="rateLimitExceeded",
                retry_after_s=max(1, math.ceil(wait)),
                limit=limit,
            )
        self._next[owner] = due + interval

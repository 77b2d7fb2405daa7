"""The errors of a submit past a key's quota, alike in every store."""

from __future__ import annotations

from openimagine.domain.quotas import seconds_to_next_day
from openimagine.errors import QuotaExceeded

# Queued jobs leave at the pace of the workers: a key at its queue limit may look again soon.
QUEUE_RETRY_S = 5


def queue_full(limit: int) -> QuotaExceeded:
    """A key's queue is at its limit."""
    return QuotaExceeded(
        f"This key has {limit} tasks waiting in the queue, its limit; retry once some have run.",
        code="tooManyQueuedTasks",
        retry_after_s=QUEUE_RETRY_S,
        limit=limit,
    )


def over_budget(budget: float, spent: float, cost: float, now: float) -> QuotaExceeded:
    """A task of `cost` dollars would take a key past its daily budget."""
    return QuotaExceeded(
        f"This task costs ${cost:.4f}: past this key's daily budget of ${budget:.2f} "
        f"(${spent:.4f} used today, UTC). Retry after midnight UTC.",
        code="dailyBudgetExceeded",
        retry_after_s=seconds_to_next_day(now),
        limit=budget,
    )

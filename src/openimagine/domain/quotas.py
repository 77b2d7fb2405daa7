"""What one key may use: its limits (the server's defaults, overridden per key), and how a
request over one is told to come back later."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; None: the server's default; 0: none."""

    max_queued: int | None = None  #: tasks waiting in the queue
    max_running: int | None = None  #: tasks running at once
    requests_per_minute: int | None = None  #: per API process
    daily_budget_usd: float | None = None  #: price of the tasks submitted per UTC day

    def over(self, defaults: Limits) -> Limits:
        """These limits, with the unset ones taken from `defaults`."""
        return replace(
            defaults,
            **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None},
        )

    def merge(self, changes: Limits) -> Limits:
        """These limits with the ones `changes` sets replaced (an override update)."""
        return changes.over(self)


@dataclass(frozen=True, slots=True)
class Admission:
    """The quotas a submit is checked against in the store, where they can be exact: the
    key's effective limits (0: none)."""

    max_queued: int = 0
    daily_budget_usd: float = 0.0

    @property
    def any(self) -> bool:
        """Whether there is anything to check."""
        return bool(self.max_queued or self.daily_budget_usd)


DAY_S = 86400


def utc_day(ts: float) -> int:
    """Days since the epoch, in UTC: the period a daily budget counts."""
    return int(ts // DAY_S)


def seconds_to_next_day(ts: float) -> int:
    """Seconds until the next UTC day starts (a `Retry-After` for a spent budget)."""
    return max(1, int((utc_day(ts) + 1) * DAY_S - ts) + 1)

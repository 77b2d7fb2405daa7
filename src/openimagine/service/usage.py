"""`UsageService`: what keys used over a period, from the usage ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from openimagine.domain.usage import UsageTotals
from openimagine.errors import InvalidInput
from openimagine.store.protocols import UsageStore

DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in seconds since the epoch."""

    start: float
    end: float

    @classmethod
    def of(cls, start: float | None, end: float | None, now: float) -> Period:
        """The period asked for: by default the last 30 days up to `now`."""
        end = now if end is None else end
        start = end - DEFAULT_DAYS * 86400 if start is None else start
        if start >= end:
            raise InvalidInput("start must be before end.", parameter="start")
        return cls(start, end)


class UsageService:
    """Totals of the ledger, for a key and for an operator."""

    def __init__(self, usage: UsageStore) -> None:
        self.usage = usage

    async def of(self, owner: str, period: Period) -> UsageTotals:
        """One key's totals (zeros when it used nothing)."""
        found = await self.usage.totals(period.start, period.end, owner)
        return found[0] if found else UsageTotals.none(owner)

    async def every_key(self, period: Period) -> list[UsageTotals]:
        """Every key's totals that used anything in the period."""
        return await self.usage.totals(period.start, period.end)


def moment(value: str | None, parameter: str) -> float | None:
    """An ISO 8601 date or time (UTC unless zoned), or epoch seconds, as epoch seconds."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"Invalid value for {parameter}: {value!r} is not an ISO 8601 date or time.",
            parameter=parameter,
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()

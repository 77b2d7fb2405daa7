"""`GET /v1/usage`: the caller's totals over a period, from the usage ledger."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from openimagine.api.deps import Owner, Services
from openimagine.api.runware import RunwareRoute
from openimagine.service.usage import Period, moment

router = APIRouter(tags=["usage"], route_class=RunwareRoute)

_WHEN = (
    "An ISO 8601 date or time (`2026-12-01`, `2026-12-01T12:00:00Z`; UTC unless it names a "
    "zone) or seconds since the epoch."
)


class Usage(BaseModel):
    """What a key used in [start, end): results count when they finished."""

    start: datetime
    end: datetime
    tasks: int = Field(description="Tasks with a finished result.")
    results: int = Field(description="Finished results, succeeded or failed.")
    failed: int = Field(description="Results that failed (not charged).")
    seconds: float = Field(description="Seconds of video delivered.")
    cost: float = Field(description="Dollars charged: the price of each delivered result.")


@router.get("/v1/usage", summary="Usage of the calling key")
async def usage(
    owner: Owner,
    deps: Services,
    start: Annotated[str | None, Query(description=f"From (default: 30 days ago). {_WHEN}")] = None,
    end: Annotated[
        str | None, Query(description=f"Until, not included (default: now). {_WHEN}")
    ] = None,
) -> Usage:
    """The calling key's tasks, results, seconds of video and cost over a period."""
    period = Period.of(moment(start, "start"), moment(end, "end"), time.time())
    totals = await deps.usage.of(owner, period)
    return Usage(
        start=datetime.fromtimestamp(period.start, UTC),
        end=datetime.fromtimestamp(period.end, UTC),
        tasks=totals.tasks,
        results=totals.results,
        failed=totals.failed,
        seconds=totals.seconds,
        cost=totals.cost,
    )

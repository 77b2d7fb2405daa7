"""`SqlUsage`: totals of the usage ledger (its rows are written with the results they bill,
in `shared.store_results`), and each key's standing against its quotas."""

from __future__ import annotations

import sqlalchemy as sa

from openimagine.domain.jobs import ResultStatus
from openimagine.domain.usage import UsageTotals
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import key_queue, spend, usage


class SqlUsage:
    """`UsageStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def totals(self, start: float, end: float, owner: str | None = None) -> list[UsageTotals]:
        """Each key's totals over results finished in [start, end); one key's with `owner`."""
        return await self._ctx.db.read(_totals, start, end, owner)

    async def standing(self, owner: str, day: int) -> tuple[int, float]:
        """The key's queued jobs and its spend on UTC `day`."""
        return await self._ctx.db.read(_standing, owner, day)


def _standing(conn: sa.Connection, owner: str, day: int) -> tuple[int, float]:
    # The key's counter (`tables.key_queue`, summed over its shards): O(1) at any depth.
    queued = sa.select(sa.func.sum(key_queue.c.queued)).where(key_queue.c.owner == owner)
    spent = sa.select(spend.c.amount).where(spend.c.owner == owner, spend.c.day == day)
    return int(conn.execute(queued).scalar() or 0), float(conn.execute(spent).scalar() or 0.0)


def _totals(conn: sa.Connection, start: float, end: float, owner: str | None) -> list[UsageTotals]:
    u = usage.c
    ok = u.status == ResultStatus.SUCCESS.value
    q = (
        sa.select(
            u.owner,
            sa.func.count(sa.distinct(u.task_uuid)),
            sa.func.count(),
            sa.func.sum(sa.case((ok, 0), else_=1)),
            sa.func.coalesce(sa.func.sum(sa.case((ok, u.seconds), else_=0.0)), 0.0),
            sa.func.coalesce(sa.func.sum(u.cost), 0.0),
        )
        .where(u.recorded_at >= start, u.recorded_at < end)
        .group_by(u.owner)
        .order_by(u.owner)
    )
    if owner is not None:
        q = q.where(u.owner == owner)
    return [
        UsageTotals(str(o), int(t), int(n), int(f), float(s), round(float(c), 6))
        for o, t, n, f, s, c in conn.execute(q)
    ]

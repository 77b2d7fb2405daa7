"""`SqlOutbox`: due deliveries leased to one sender at a time."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from openimagine.domain.deliveries import Delivery, DeliveryStatus
from openimagine.store.sql.executor import Executor
from openimagine.store.sql.rows import to_delivery
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import deliveries


class SqlOutbox:
    """`OutboxStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def claim(
        self, limit: int, lease_s: float, *, per_host: int = 0, busy: Collection[str] = ()
    ) -> list[Delivery]:
        """Lease due deliveries (pending, due, and not leased by another sender), oldest
        first: at most `per_host` to one destination (0: no bound), none to `busy` ones."""
        now = self._ctx.now()
        # perf: senders look four times a second; a read on the hot path (on SQLite: on the
        # event loop, no thread) answers "nothing due".
        if not await self._ctx.db.read_hot(_any_due, now):
            return []
        return await self._ctx.db.write(_claim, limit, lease_s, now, per_host, tuple(busy))

    async def done(self, delivery_id: str) -> None:
        """A delivery succeeded."""
        values = {
            "status": DeliveryStatus.DELIVERED.value,
            "delivered_at": self._ctx.now(),
            "lease_expires_at": None,
        }
        await self._ctx.db.write(_update, delivery_id, values)

    async def retry(self, delivery_id: str, error: str, next_at: float | None) -> None:
        """A try failed; try again at `next_at`, or give up when None."""
        values: dict[str, Any] = {"last_error": error[:2000], "lease_expires_at": None}
        if next_at is None:
            values["status"] = DeliveryStatus.FAILED.value
        else:
            values["next_attempt_at"] = next_at
        await self._ctx.db.write(_update, delivery_id, values)


def _due(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at <= now,
        sa.or_(deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at < now),
    )


_ANY_DUE = (
    "SELECT 1 FROM deliveries WHERE status = 'pending' AND next_attempt_at <= :now"
    " AND (lease_expires_at IS NULL OR lease_expires_at < :now) LIMIT 1"
)


async def _any_due(ex: Executor, now: float) -> bool:
    return await ex.fetchone(_ANY_DUE, {"now": now}) is not None


def _candidates(
    now: float, limit: int, per_host: int, busy: tuple[str, ...]
) -> sa.Select[tuple[str]]:
    """The ids to lease: due rows oldest first, the `per_host` oldest of each destination."""
    d = deliveries.c
    order = (d.next_attempt_at, d.created_at)
    nth = sa.func.row_number().over(partition_by=d.host, order_by=order).label("nth")
    inner = sa.select(d.id, d.next_attempt_at, d.created_at, nth).where(_due(now))
    if busy:
        inner = inner.where(d.host.not_in(busy))
    due = inner.subquery()
    q = sa.select(due.c.id).order_by(due.c.next_attempt_at, due.c.created_at).limit(limit)
    return q.where(due.c.nth <= per_host) if per_host > 0 else q


def _claim(
    conn: sa.Connection,
    limit: int,
    lease_s: float,
    now: float,
    per_host: int,
    busy: tuple[str, ...],
) -> list[Delivery]:
    ids = [r[0] for r in conn.execute(_candidates(now, limit, per_host, busy))]
    if not ids:
        return []
    # The update checks again that each row is due and unleased: on PostgreSQL another
    # sender may lease the same candidates first (the update waits for its row locks, then
    # sees the lease), so no row is ever leased twice.
    rows = conn.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(ids), _due(now))
        .values(lease_expires_at=now + lease_s, attempts=deliveries.c.attempts + 1)
        .returning(*deliveries.c)
    )
    claimed = [to_delivery(r) for r in rows]
    return sorted(claimed, key=lambda d: (d.next_attempt_at, d.created_at))


def _update(conn: sa.Connection, delivery_id: str, values: dict[str, Any]) -> None:
    conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))

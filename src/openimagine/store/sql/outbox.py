"""`SqlOutbox`: due deliveries leased to one sender at a time."""

from __future__ import annotations

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

    async def claim(self, limit: int, lease_s: float) -> list[Delivery]:
        """Lease due deliveries (pending, due, and not leased by another sender)."""
        now = self._ctx.now()
        # perf: senders look four times a second; a read on the hot path (on SQLite: on the
        # event loop, no thread) answers "nothing due".
        if not await self._ctx.db.read_hot(_any_due, now):
            return []
        return await self._ctx.db.write(_claim, limit, lease_s, now, self._ctx.db.dialect)

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


def _claim(
    conn: sa.Connection, limit: int, lease_s: float, now: float, dialect: str
) -> list[Delivery]:
    q = (
        sa.select(deliveries.c.id)
        .where(_due(now))
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = [r[0] for r in conn.execute(q)]
    if not ids:
        return []
    rows = conn.execute(
        deliveries.update()
        .where(deliveries.c.id.in_(ids))
        .values(lease_expires_at=now + lease_s, attempts=deliveries.c.attempts + 1)
        .returning(*deliveries.c)
    )
    claimed = [to_delivery(r) for r in rows]
    return sorted(claimed, key=lambda d: (d.next_attempt_at, d.created_at))


def _update(conn: sa.Connection, delivery_id: str, values: dict[str, Any]) -> None:
    conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))

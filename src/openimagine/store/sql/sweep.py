"""`SqlSweep`: results whose URLs have expired while their files are kept."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import results


class SqlSweep:
    """`SweepStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def expired(self, limit: int) -> list[tuple[str, str]]:
        """(video_uuid, blob_key) of results whose URL expired but whose file is kept."""
        return await self._ctx.db.read(_expired, limit, self._ctx.now())

    async def forget(self, video_uuids: Sequence[str]) -> None:
        """Record that these results' files are deleted."""
        if video_uuids:
            await self._ctx.db.write(_forget, list(video_uuids))


def _expired(conn: sa.Connection, limit: int, now: float) -> list[tuple[str, str]]:
    q = (
        sa.select(results.c.video_uuid, results.c.blob_key)
        .where(results.c.blob_key.is_not(None), results.c.expires_at < now)
        .order_by(results.c.expires_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in conn.execute(q)]


def _forget(conn: sa.Connection, video_uuids: list[str]) -> None:
    conn.execute(
        results.update()
        .where(results.c.video_uuid.in_(video_uuids))
        .values(blob_key=None, size_bytes=None)
    )

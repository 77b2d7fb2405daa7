"""`SqlSweep`: results whose URLs have expired while their files are kept, and expired inputs."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from openimagine.domain.jobs import JobStatus
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import jobs, media, results

_UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_ROUNDS = 3  # batches of expired inputs one pass looks at when all are in use


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

    async def expired_media(self, limit: int, hold_s: float) -> list[tuple[str, str]]:
        """Expired inputs no unfinished job uses; those in use are kept `hold_s` more."""
        return await self._ctx.db.write(_expired_media, limit, self._ctx.now(), hold_s)

    async def forget_media(self, media_uuids: Sequence[str]) -> None:
        """Remove these expired inputs."""
        if media_uuids:
            await self._ctx.db.write(_forget_media, list(media_uuids), self._ctx.now())


def _expired(conn: sa.Connection, limit: int, now: float) -> list[tuple[str, str]]:
    # A result a queued or running video-to-video job reads as its source keeps its file
    # (its URL has expired all the same) until that job has ended.
    source = jobs.alias("source")
    in_use = _named_by_unfinished(source.c.owner, results.c.blob_key)
    q = (
        sa.select(results.c.video_uuid, results.c.blob_key)
        .join(source, source.c.task_uuid == results.c.task_uuid)
        .where(results.c.blob_key.is_not(None), results.c.expires_at < now, ~in_use)
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


def _named_by_unfinished(owner: sa.ColumnElement[str], key: sa.ColumnElement[str]) -> sa.Exists:
    """Whether a queued or running job of `owner` names the blob `key` as an input.

    A job names its inputs by blob key in its stored request (JSON): the quoted key is
    matched, through the (owner, status) index, among that owner's unfinished jobs only.
    Blob keys (`inputs/<uuid>.<ext>`, `videos/<uuid>-<hex>.<ext>`) hold no LIKE wildcard.
    """
    quoted = sa.literal('"') + key + sa.literal('"')
    return sa.exists().where(
        jobs.c.owner == owner,
        jobs.c.status.in_(_UNFINISHED),
        jobs.c.request.contains(quoted),
    )


def _expired_media(
    conn: sa.Connection, limit: int, now: float, hold_s: float
) -> list[tuple[str, str]]:
    m = media.c
    in_use = _named_by_unfinished(m.owner, m.blob_key).label("busy")
    oldest = (
        sa.select(m.media_uuid, m.blob_key, in_use)
        .where(m.expires_at < now)
        .order_by(m.expires_at)
        .limit(limit)
    )
    # Bounded: this holds the write lock, so a pass looks at a few batches and leaves the
    # rest to the next pass.
    for _ in range(_ROUNDS):
        found = conn.execute(oldest).all()
        busy = [r.media_uuid for r in found if r.busy]
        if busy:
            # perf: held out of the expired set, an input a long queue waits on is looked
            # at once per `hold_s`, not on every sweep.
            held = media.update().where(m.media_uuid.in_(busy)).values(expires_at=now + hold_s)
            conn.execute(held)
        free = [(r.media_uuid, r.blob_key) for r in found if not r.busy]
        if free or not busy:
            return free
    return []


def _forget_media(conn: sa.Connection, media_uuids: list[str], now: float) -> None:
    # Only still-expired rows: no touch revives an expired input, so none is dropped here
    # that a submit has just taken.
    conn.execute(
        media.delete().where(media.c.media_uuid.in_(media_uuids), media.c.expires_at < now)
    )

"""Store operations beside the job queue: API keys, uploaded media, workers, the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from openimagine.store.base import ApiKey, MediaItem, OutboxItem, WorkerInfo
from openimagine.store.engine import Engines
from openimagine.store.rows import to_media, to_outbox, to_worker
from openimagine.store.tables import api_keys, media, results, webhook_outbox, workers


class ExtrasMixin:
    """Keys, media, workers and outbox; mixed into `SqlStore`."""

    engines: Engines
    clock: Callable[[], float]

    # -- API keys ----------------------------------------------------------------------------

    async def add_api_key(self, key_hash: str, label: str, prefix: str) -> str:
        """Store a key hash (idempotent); return its id."""
        async with self.engines.write.begin() as conn:
            q = sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)
            existing = (await conn.execute(q)).scalar()
            if existing is not None:
                return str(existing)
            key_id = str(uuid.uuid4())
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    key_hash=key_hash,
                    label=label,
                    prefix=prefix,
                    created_at=self.clock(),
                )
            )
            return key_id

    async def find_api_key(self, key_hash: str) -> str | None:
        """The id of an active key with this hash."""
        async with self.engines.read.connect() as conn:
            q = sa.select(api_keys.c.id).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            )
            found = (await conn.execute(q)).scalar()
            return None if found is None else str(found)

    async def list_api_keys(self) -> list[ApiKey]:
        """All keys, newest first."""
        async with self.engines.read.connect() as conn:
            q = sa.select(
                api_keys.c.id,
                api_keys.c.label,
                api_keys.c.prefix,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            ).order_by(api_keys.c.created_at.desc())
            return [ApiKey(**dict(r._mapping)) for r in await conn.execute(q)]

    async def revoke_api_key(self, key_id_or_prefix: str) -> bool:
        """Revoke by id or prefix; False when nothing matched."""
        async with self.engines.write.begin() as conn:
            res = await conn.execute(
                api_keys.update()
                .where(
                    sa.or_(
                        api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix
                    ),
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=self.clock())
            )
            return bool(res.rowcount)

    # -- media -------------------------------------------------------------------------------

    async def add_media(self, item: MediaItem) -> None:
        """Store an uploaded input's metadata."""
        async with self.engines.write.begin() as conn:
            await conn.execute(media.insert().values(**_fields(item)))

    async def get_media(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        """An uploaded input (owner None: any owner)."""
        async with self.engines.read.connect() as conn:
            q = media.select().where(media.c.media_uuid == media_uuid)
            if owner is not None:
                q = q.where(media.c.owner == owner)
            row = (await conn.execute(q)).first()
            return None if row is None else to_media(row)

    async def delete_media(self, media_uuid: str, owner: str) -> MediaItem | None:
        """Remove an uploaded input; return what was removed."""
        async with self.engines.write.begin() as conn:
            q = media.delete().where(media.c.media_uuid == media_uuid, media.c.owner == owner)
            row = (await conn.execute(q.returning(*media.c))).first()
            return None if row is None else to_media(row)

    # -- workers -----------------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        """Insert or replace a worker's row."""
        async with self.engines.write.begin() as conn:
            await conn.execute(workers.delete().where(workers.c.id == info.id))
            await conn.execute(workers.insert().values(**_fields(info)))

    async def worker_heartbeat(self, worker_id: str, state: str) -> None:
        """Refresh a worker's row."""
        async with self.engines.write.begin() as conn:
            await conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(state=state, heartbeat_at=self.clock())
            )

    async def list_workers(self, fresh_within_s: float | None = None) -> list[WorkerInfo]:
        """Workers, optionally only those seen recently."""
        async with self.engines.read.connect() as conn:
            q = workers.select().order_by(workers.c.started_at)
            if fresh_within_s is not None:
                q = q.where(workers.c.heartbeat_at >= self.clock() - fresh_within_s)
            return [to_worker(r) for r in await conn.execute(q)]

    # -- expiry ------------------------------------------------------------------------------

    async def expired_blobs(self, limit: int) -> list[tuple[str, str]]:
        """(video_uuid, blob_key) of results whose URL has expired but whose blob is kept."""
        async with self.engines.read.connect() as conn:
            q = (
                sa.select(results.c.video_uuid, results.c.blob_key)
                .where(results.c.blob_key.is_not(None), results.c.expires_at < self.clock())
                .order_by(results.c.expires_at)
                .limit(limit)
            )
            return [(r[0], r[1]) for r in await conn.execute(q)]

    async def forget_blobs(self, video_uuids: list[str]) -> None:
        """Record that these results' blobs are deleted (their items lose `videoURL`)."""
        if not video_uuids:
            return
        async with self.engines.write.begin() as conn:
            await conn.execute(
                results.update()
                .where(results.c.video_uuid.in_(video_uuids))
                .values(blob_key=None, size_bytes=None)
            )

    # -- outbox ------------------------------------------------------------------------------

    async def claim_outbox(self, limit: int, lease_s: float) -> list[OutboxItem]:
        """Lease due deliveries (pending, due, and not leased by another sender)."""
        now = self.clock()
        async with self.engines.write.begin() as conn:
            q = (
                sa.select(webhook_outbox.c.id)
                .where(
                    webhook_outbox.c.status == "pending",
                    webhook_outbox.c.next_attempt_at <= now,
                    sa.or_(
                        webhook_outbox.c.lease_expires_at.is_(None),
                        webhook_outbox.c.lease_expires_at < now,
                    ),
                )
                .order_by(webhook_outbox.c.next_attempt_at)
                .limit(limit)
            )
            if self.engines.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = [r[0] for r in await conn.execute(q)]
            if not ids:
                return []
            rows = await conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id.in_(ids))
                .values(lease_expires_at=now + lease_s, attempts=webhook_outbox.c.attempts + 1)
                .returning(*webhook_outbox.c)
            )
            return [to_outbox(r) for r in rows]

    async def outbox_done(self, item_id: str) -> None:
        """A delivery succeeded."""
        async with self.engines.write.begin() as conn:
            await conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id == item_id)
                .values(status="delivered", delivered_at=self.clock(), lease_expires_at=None)
            )

    async def outbox_retry(self, item_id: str, error: str, next_at: float | None) -> None:
        """A delivery failed; try again at `next_at`, or give up when None."""
        values: dict[str, Any] = {"last_error": error[:2000], "lease_expires_at": None}
        if next_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = next_at
        async with self.engines.write.begin() as conn:
            await conn.execute(
                webhook_outbox.update().where(webhook_outbox.c.id == item_id).values(**values)
            )

    async def outbox_status(self, task_uuid: str) -> list[dict[str, object]]:
        """Deliveries of a job, for inspection."""
        async with self.engines.read.connect() as conn:
            q = (
                webhook_outbox.select()
                .where(webhook_outbox.c.task_uuid == task_uuid)
                .order_by(webhook_outbox.c.created_at)
            )
            return [dict(r._mapping) for r in await conn.execute(q)]


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}

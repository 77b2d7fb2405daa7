"""Store operations beside the job queue: API keys, uploaded media, workers, the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from openimagine.domain.jobs import Job, JobStatus, Result
from openimagine.errors import Conflict, NotFound
from openimagine.store.base import ApiKey, MediaItem, OutboxItem, WorkerInfo
from openimagine.store.engine import Engines
from openimagine.store.rows import to_job, to_media, to_outbox, to_result, to_worker
from openimagine.store.tables import api_keys, jobs, media, results, webhook_outbox, workers


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

    # -- listing and deleting jobs (the OpenAI-compatible /v1/videos) -------------------------

    async def list_jobs(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        """A page of the owner's jobs with their results, by (created_at, task_uuid), after
        the job `after`; `NotFound` when `after` is not one of the owner's jobs."""
        async with self.engines.read.connect() as conn:
            q = jobs.select().where(jobs.c.owner == owner)
            if after is not None:
                cursor = (
                    await conn.execute(
                        sa.select(jobs.c.created_at).where(
                            jobs.c.task_uuid == after, jobs.c.owner == owner
                        )
                    )
                ).first()
                if cursor is None:
                    raise NotFound(f"No video with id {after}.", parameter="after")
                q = q.where(_beyond(cursor[0], after, descending))
            keys = (jobs.c.created_at, jobs.c.task_uuid)
            q = q.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit)
            page = [to_job(r) for r in await conn.execute(q)]
            if not page:
                return []
            rq = (
                results.select()
                .where(results.c.task_uuid.in_([j.task_uuid for j in page]))
                .order_by(results.c.task_uuid, results.c.idx)
            )
            grouped: dict[str, list[Result]] = {j.task_uuid: [] for j in page}
            for row in await conn.execute(rq):
                result = to_result(row)
                grouped[result.task_uuid].append(result)
            return [(j, grouped[j.task_uuid]) for j in page]

    async def delete_job(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        """Remove a job no worker holds, with its results and deliveries; return what was
        removed. A running job raises `Conflict` (cancel it first)."""
        async with self.engines.write.begin() as conn:
            q = jobs.select().where(jobs.c.task_uuid == task_uuid, jobs.c.owner == owner)
            if self.engines.dialect == "postgresql":
                q = q.with_for_update()  # a claim (SKIP LOCKED) passes it by meanwhile
            row = (await conn.execute(q)).first()
            if row is None:
                return None
            job = to_job(row)
            if job.status is JobStatus.RUNNING:
                raise Conflict(
                    f"Task {task_uuid} is running: cancel it, then delete it once it stops.",
                    code="taskRunning",
                    parameter="taskUUID",
                )
            rq = results.select().where(results.c.task_uuid == task_uuid).order_by(results.c.idx)
            removed = [to_result(r) for r in await conn.execute(rq)]
            await conn.execute(
                webhook_outbox.delete().where(webhook_outbox.c.task_uuid == task_uuid)
            )
            await conn.execute(results.delete().where(results.c.task_uuid == task_uuid))
            await conn.execute(jobs.delete().where(jobs.c.task_uuid == task_uuid))
            return job, removed


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _beyond(created_at: float, task_uuid: str, descending: bool) -> sa.ColumnElement[bool]:
    """Rows after the cursor (created_at, task_uuid) in the page order."""
    if descending:
        return sa.or_(
            jobs.c.created_at < created_at,
            sa.and_(jobs.c.created_at == created_at, jobs.c.task_uuid < task_uuid),
        )
    return sa.or_(
        jobs.c.created_at > created_at,
        sa.and_(jobs.c.created_at == created_at, jobs.c.task_uuid > task_uuid),
    )

"""The outbox, keys, media, workers and sweep parts of the `MemoryStore`."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from openimagine.domain.deliveries import Delivery, DeliveryStatus, destination
from openimagine.domain.jobs import JobStatus, ResultStatus
from openimagine.domain.quotas import Limits
from openimagine.domain.records import ApiKey, MediaItem, WorkerInfo, WorkerState
from openimagine.domain.usage import UsageEntry, UsageTotals
from openimagine.store.memory.state import State


class MemoryOutbox:
    """`OutboxStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def claim(
        self, limit: int, lease_s: float, *, per_host: int = 0, busy: Collection[str] = ()
    ) -> list[Delivery]:
        now = self._s.clock()
        due = sorted(
            (
                d
                for d in self._s.deliveries.values()
                if d.status is DeliveryStatus.PENDING
                and d.next_attempt_at <= now
                and self._s.delivery_leases.get(d.id, 0.0) < now
                and destination(d.url) not in busy
            ),
            key=lambda d: (d.next_attempt_at, d.created_at),
        )
        taken: Counter[str] = Counter()
        claimed: list[Delivery] = []
        for d in due:
            host = destination(d.url)
            if len(claimed) == limit:
                break
            if per_host and taken[host] >= per_host:
                continue
            taken[host] += 1
            d = replace(d, attempts=d.attempts + 1)
            self._s.deliveries[d.id] = d
            self._s.delivery_leases[d.id] = now + lease_s
            claimed.append(d)
        return claimed

    async def done(self, delivery_id: str) -> None:
        d = self._s.deliveries.get(delivery_id)
        if d is not None:
            self._s.deliveries[d.id] = replace(
                d, status=DeliveryStatus.DELIVERED, delivered_at=self._s.clock()
            )
            self._s.delivery_leases.pop(d.id, None)

    async def retry(self, delivery_id: str, error: str, next_at: float | None) -> None:
        d = self._s.deliveries.get(delivery_id)
        if d is None:
            return
        d = replace(d, last_error=error[:2000])
        if next_at is None:
            d = replace(d, status=DeliveryStatus.FAILED)
        else:
            d = replace(d, next_attempt_at=next_at)
        self._s.deliveries[d.id] = d
        self._s.delivery_leases.pop(d.id, None)


class MemoryKeys:
    """`KeyStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def add(self, key_hash: str, label: str, prefix: str) -> str:
        for key_id, (stored, _) in self._s.keys.items():
            if stored == key_hash:
                return key_id
        key_id = str(uuid.uuid4())
        self._s.keys[key_id] = (key_hash, ApiKey(key_id, label, prefix, self._s.clock(), None))
        return key_id

    async def limits(self, key_id: str) -> Limits:
        found = self._s.keys.get(key_id)
        return Limits() if found is None else found[1].limits

    async def set_limits(self, key_id_or_prefix: str, changes: Limits) -> bool:
        hit = False
        for key_id, (stored, key) in list(self._s.keys.items()):
            if key.revoked_at is None and key_id_or_prefix in (key.id, key.prefix):
                self._s.keys[key_id] = (stored, replace(key, limits=key.limits.merge(changes)))
                hit = True
        return hit

    async def configure(self, keys: Mapping[str, str]) -> None:
        now = self._s.clock()
        for key_id, (stored, key) in list(self._s.keys.items()):
            if key.configured and stored not in keys and key.revoked_at is None:
                self._s.keys[key_id] = (stored, replace(key, revoked_at=now))
        known = {stored: key_id for key_id, (stored, _) in self._s.keys.items()}
        for key_hash, prefix in keys.items():
            if key_hash not in known:
                key_id = str(uuid.uuid4())
                key = ApiKey(key_id, "configured", prefix, now, None, configured=True)
                self._s.keys[key_id] = (key_hash, key)
            elif (key := self._s.keys[known[key_hash]][1]).configured:  # not a `keys create` one
                self._s.keys[key.id] = (key_hash, replace(key, revoked_at=None, prefix=prefix))

    async def find(self, key_hash: str) -> str | None:
        for key_id, (stored, key) in self._s.keys.items():
            if stored == key_hash and key.revoked_at is None:
                return key_id
        return None

    async def all(self) -> list[ApiKey]:
        return sorted((k for _, k in self._s.keys.values()), key=lambda k: -k.created_at)

    async def revoke(self, key_id_or_prefix: str) -> bool:
        hit = False
        for key_id, (stored, key) in list(self._s.keys.items()):
            if key.revoked_at is None and key_id_or_prefix in (key.id, key.prefix):
                self._s.keys[key_id] = (stored, replace(key, revoked_at=self._s.clock()))
                hit = True
        return hit


class MemoryMedia:
    """`MediaStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def add(self, item: MediaItem, *, max_owner_bytes: int = 0) -> bool:
        if max_owner_bytes:
            used, _ = await self.stored(item.owner)
            if used + item.size_bytes > max_owner_bytes:
                return False
        self._s.media[item.media_uuid] = item
        return True

    async def get(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        item = self._s.media.get(media_uuid)
        return None if item is None or (owner is not None and item.owner != owner) else item

    async def touch(self, media_uuid: str, owner: str, keep_s: float) -> MediaItem | None:
        item = await self.get(media_uuid, owner)
        now = self._s.clock()
        if item is None or item.expires_at is None:
            return item
        if item.expires_at < now:
            return None
        item = replace(item, expires_at=max(item.expires_at, now + keep_s))
        self._s.media[media_uuid] = item
        return item

    async def stored(self, owner: str) -> tuple[int, float | None]:
        now = self._s.clock()
        mine = [
            m
            for m in self._s.media.values()
            if m.owner == owner and (m.expires_at is None or m.expires_at >= now)
        ]
        expiries = [m.expires_at for m in mine if m.expires_at is not None]
        return sum(m.size_bytes for m in mine), min(expiries, default=None)

    async def delete(self, media_uuid: str, owner: str) -> MediaItem | None:
        item = await self.get(media_uuid, owner)
        if item is not None:
            del self._s.media[media_uuid]
        return item


class MemoryWorkers:
    """`WorkerRegistry` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def register(self, info: WorkerInfo) -> None:
        self._s.workers[info.id] = replace(info, task_uuid=None)  # read from the jobs

    async def beat(self, worker_id: str, state: WorkerState) -> None:
        info = self._s.workers.get(worker_id)
        if info is not None:
            self._s.workers[worker_id] = replace(info, state=state, heartbeat_at=self._s.clock())

    async def all(self, fresh_within_s: float | None = None) -> list[WorkerInfo]:
        since = None if fresh_within_s is None else self._s.clock() - fresh_within_s
        found = (w for w in self._s.workers.values() if since is None or w.heartbeat_at >= since)
        # As `sql.workers`: the running job whose lease each holds (the latest to expire).
        held = sorted(
            (j for j in self._s.jobs.values() if j.status is JobStatus.RUNNING),
            key=lambda j: j.lease_expires_at or 0.0,
        )
        tasks = {j.lease_owner: j.task_uuid for j in held}
        return [
            replace(w, task_uuid=tasks.get(w.id)) for w in sorted(found, key=lambda w: w.started_at)
        ]


class MemorySweep:
    """`SweepStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def expired(self, limit: int) -> list[tuple[str, str]]:
        now = self._s.clock()
        used = self._used_inputs()
        found = [
            r
            for task_uuid, results in self._s.results.items()
            for r in results
            if r.blob_key is not None
            and r.expires_at is not None
            and r.expires_at < now
            and (self._s.jobs[task_uuid].owner, r.blob_key) not in used
        ]
        found.sort(key=lambda r: r.expires_at or 0.0)
        return [(r.video_uuid, r.blob_key) for r in found[:limit] if r.blob_key is not None]

    async def forget(self, video_uuids: Sequence[str]) -> None:
        gone = set(video_uuids)
        for task_uuid in self._s.results:
            self._s.set_results(
                task_uuid,
                lambda r: replace(r, blob_key=None, size_bytes=None) if r.video_uuid in gone else r,
            )

    async def expired_media(self, limit: int, hold_s: float) -> list[tuple[str, str]]:
        now = self._s.clock()
        expired = sorted(
            (m for m in self._s.media.values() if m.expires_at is not None and m.expires_at < now),
            key=lambda m: m.expires_at or 0.0,
        )
        used = self._used_inputs()
        free: list[tuple[str, str]] = []
        for m in expired:
            if (m.owner, m.blob_key) in used:
                self._s.media[m.media_uuid] = replace(m, expires_at=now + hold_s)
            elif len(free) < limit:
                free.append((m.media_uuid, m.blob_key))
        return free

    def _used_inputs(self) -> set[tuple[str, str]]:
        """(owner, blob key) of every input a queued or running job names."""
        return {
            (j.owner, key)
            for j in self._s.jobs.values()
            if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
            for key in (j.spec.frame_image, j.spec.video, *j.spec.reference_images)
            if key is not None
        }

    async def forget_media(self, media_uuids: Sequence[str]) -> None:
        now = self._s.clock()
        for media_uuid in media_uuids:
            item = self._s.media.get(media_uuid)
            if item is not None and item.expires_at is not None and item.expires_at < now:
                del self._s.media[media_uuid]


class MemoryUsage:
    """`UsageStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def totals(self, start: float, end: float, owner: str | None = None) -> list[UsageTotals]:
        by_owner: dict[str, list[UsageEntry]] = {}
        for e in self._s.usage.values():
            if start <= e.recorded_at < end and owner in (None, e.owner):
                by_owner.setdefault(e.owner, []).append(e)
        out = []
        for key, entries in sorted(by_owner.items()):
            ok = [e for e in entries if e.status is ResultStatus.SUCCESS]
            tasks = len({e.task_uuid for e in entries})
            seconds, cost = sum(e.seconds for e in ok), round(sum(e.cost for e in entries), 6)
            out.append(UsageTotals(key, tasks, len(entries), len(entries) - len(ok), seconds, cost))
        return out

    async def standing(self, owner: str, day: int) -> tuple[int, float]:
        queued = [
            j for j in self._s.jobs.values() if j.owner == owner and j.status is JobStatus.QUEUED
        ]
        return len(queued), self._s.spend.get((owner, day), 0.0)

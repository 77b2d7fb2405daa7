"""The store, split by who uses it: each side of the system sees only its part.

- `JobStore`: the API's reads and writes of jobs (submit, poll, cancel, list, delete).
- `QueueStore`: the worker's claim, lease, progress and completion, fenced by lease tokens.
- `OutboxStore`: the delivery sender's leases on due webhooks and uploads.
- `KeyStore`, `MediaStore`, `WorkerRegistry`, `SweepStore`: keys, uploaded inputs, worker
  heartbeats, and expired result files and inputs.

`TaskStore` holds one of each over the same data; `store.sql.SqlStore` (SQLite or
PostgreSQL) and `store.memory.MemoryStore` implement it, and one contract suite checks both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from openimagine.domain.deliveries import Delivery, NewDelivery
from openimagine.domain.jobs import (
    ANY,
    Capability,
    Claim,
    Job,
    JobStatus,
    NewJob,
    Result,
    ResultUpdate,
)
from openimagine.domain.quotas import Admission, Limits
from openimagine.domain.records import ApiKey, MediaItem, WorkerInfo, WorkerState
from openimagine.domain.usage import UsageTotals


class JobStore(Protocol):
    """Jobs as the API reads and writes them."""

    async def create(self, new: NewJob, quota: Admission = ...) -> tuple[Job, list[Result], bool]:
        """Insert a job and its results; idempotent on (task_uuid, request_hash, owner).

        Returns the stored job, its results, and whether this call created it. Raises
        `Conflict` when the task UUID exists with a different request or owner, and
        `QuotaExceeded` (storing nothing) when a new job takes its owner past `quota`: more
        queued jobs than `max_queued`, or more than `daily_budget_usd` of jobs submitted
        this UTC day (exact on SQLite and the memory store; on PostgreSQL the queue limit
        may be passed by the submits of one key committing at the same instant).
        """
        ...

    async def get(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        """A job and its results (owner None: any owner)."""
        ...

    async def get_placed(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        """`get`, with the job's queue place: how many jobs are claimed before it (None unless
        it is queued). One read, whose cost does not grow with the length of the queue."""
        ...

    async def finished_result(self, video_uuid: str) -> Result | None:
        """A finished result by its videoUUID (None while it is processing)."""
        ...

    async def page(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        """A page of the owner's jobs with their results, ordered by creation (newest first
        when `descending`), starting after the job `after`. Raises `NotFound` when `after`
        is not one of the owner's jobs."""
        ...

    async def delete(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        """Remove a job no worker holds, with its results and deliveries; return what was
        removed (None when the owner has no such job). Raises `Conflict` while it runs."""
        ...

    async def cancel(self, task_uuid: str, owner: str | None) -> Job:
        """Cancel a queued job now, or flag a running one for its worker; `NotFound` when
        there is no such job."""
        ...

    async def deliveries(self, task_uuid: str) -> list[Delivery]:
        """A job's webhook and upload deliveries, oldest first."""
        ...


class QueueStore(Protocol):
    """The queue as workers use it. Every write on a claimed job is fenced by its lease
    token: once the lease is lost (expired and re-claimed) it raises `LeaseLost` and changes
    nothing."""

    async def claim(
        self,
        worker_id: str,
        lease_s: float,
        *,
        max_running: int = 0,
        capability: Capability = ANY,
    ) -> Claim | None:
        """Lease the next runnable job that `capability` fits: running with an expired
        lease, else the next queued one whose owner runs fewer jobs than its limit (its key's
        `max_running` override, else `max_running`; 0: none. Exact on SQLite; on PostgreSQL
        two workers claiming at the same instant may each take one more). Jobs it does not
        fit are passed over, left for other workers, in both cases."""
        ...

    async def wait(self, timeout_s: float) -> None:
        """Return when a job may have arrived (a wake-up from a submit), or after
        `timeout_s`: idle workers sleep here instead of polling."""
        ...

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""
        ...

    async def progress(self, task_uuid: str, token: str, percent: int) -> bool:
        """Record progress (0-100); return whether cancel was requested."""
        ...

    async def complete_result(
        self,
        task_uuid: str,
        token: str,
        update: ResultUpdate,
        deliveries: Sequence[NewDelivery] = (),
        *,
        last: bool = False,
    ) -> None:
        """Mark one result successful, with its deliveries, in one transaction. `last`: the
        job's other results have finished and the job succeeds with this one, in the same
        transaction (its worker calls no `finish`)."""
        ...

    async def finish(
        self,
        task_uuid: str,
        token: str,
        status: JobStatus,
        error_code: str | None = None,
        error_message: str | None = None,
        deliveries: Sequence[NewDelivery] = (),
    ) -> None:
        """Terminal transition; results still processing take the error."""
        ...

    async def release(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue without spending an attempt."""
        ...

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired after their last attempt."""
        ...


class OutboxStore(Protocol):
    """Due deliveries, leased to one sender at a time."""

    async def claim(
        self, limit: int, lease_s: float, *, per_host: int = 0, busy: Collection[str] = ()
    ) -> list[Delivery]:
        """Lease due deliveries (pending, due, not leased by another sender), oldest first;
        at most `per_host` to one destination (`domain.deliveries.destination`; 0: no bound)
        and none to the destinations in `busy`. Each claim counts as a try."""
        ...

    async def done(self, delivery_id: str) -> None:
        """A delivery succeeded."""
        ...

    async def retry(self, delivery_id: str, error: str, next_at: float | None) -> None:
        """A try failed; try again at `next_at`, or give up (status failed) when None."""
        ...


class KeyStore(Protocol):
    """API keys, stored as hashes."""

    async def add(self, key_hash: str, label: str, prefix: str) -> str:
        """Store a key hash (idempotent); return its id."""
        ...

    async def limits(self, key_id: str) -> Limits:
        """A key's overrides of the quota settings (none set: `Limits()`)."""
        ...

    async def set_limits(self, key_id_or_prefix: str, changes: Limits) -> bool:
        """Change the overrides `changes` sets (0: no limit) on an active key; False when
        none matched."""
        ...

    async def configure(self, keys: Mapping[str, str]) -> None:
        """Make the keys given with `--api-key` (hash → prefix) exactly the active configured
        ones: add or reactivate each, revoke every other configured key."""
        ...

    async def find(self, key_hash: str) -> str | None:
        """The id of an active key with this hash."""
        ...

    async def all(self) -> list[ApiKey]:
        """All keys, newest first."""
        ...

    async def revoke(self, key_id_or_prefix: str) -> bool:
        """Revoke by id or prefix; False when nothing matched."""
        ...


class MediaStore(Protocol):
    """Uploaded and fetched inputs."""

    async def add(self, item: MediaItem, *, max_owner_bytes: int = 0) -> bool:
        """Store an input's metadata, unless its owner's unexpired inputs would then hold
        more than `max_owner_bytes` (0: no cap); return whether it was stored. Exact on
        every store (on PostgreSQL the adds of one owner take turns)."""
        ...

    async def get(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        """An input (owner None: any owner), expired or not."""
        ...

    async def touch(self, media_uuid: str, owner: str, keep_s: float) -> MediaItem | None:
        """The owner's input if it has not expired, now kept at least `keep_s` longer
        (None: there is no such input, or it expired, which nothing undoes)."""
        ...

    async def stored(self, owner: str) -> tuple[int, float | None]:
        """The bytes of the owner's unexpired inputs, and when the first of them expires."""
        ...

    async def delete(self, media_uuid: str, owner: str) -> MediaItem | None:
        """Remove an input; return what was removed."""
        ...


class WorkerRegistry(Protocol):
    """Worker processes and their heartbeats."""

    async def register(self, info: WorkerInfo) -> None:
        """Insert or replace a worker's row."""
        ...

    async def beat(self, worker_id: str, state: WorkerState) -> None:
        """Refresh a worker's row."""
        ...

    async def all(self, fresh_within_s: float | None = None) -> list[WorkerInfo]:
        """Workers, oldest first, optionally only those seen recently."""
        ...


class SweepStore(Protocol):
    """Result files whose URLs have expired, and expired inputs."""

    async def expired(self, limit: int) -> list[tuple[str, str]]:
        """(video_uuid, blob_key) of results whose URL expired while their file is kept."""
        ...

    async def forget(self, video_uuids: Sequence[str]) -> None:
        """Record that these results' files are deleted (their items lose `videoURL`)."""
        ...

    async def expired_media(self, limit: int, hold_s: float) -> list[tuple[str, str]]:
        """(media_uuid, blob_key) of up to `limit` expired inputs that no queued or running
        job uses, soonest expired first. An expired input a job uses is kept `hold_s` more
        (and looked at again then), so it is never handed out while its job may read it."""
        ...

    async def forget_media(self, media_uuids: Sequence[str]) -> None:
        """Remove these inputs, whose files are deleted."""
        ...


class UsageStore(Protocol):
    """The usage ledger: an entry for every finished result, written with it; and what
    each key has queued and spent, as its quotas count them."""

    async def totals(self, start: float, end: float, owner: str | None = None) -> list[UsageTotals]:
        """Each key's totals over results finished in [start, end), by owner; only
        `owner`'s when given (no entry: an empty list)."""
        ...

    async def standing(self, owner: str, day: int) -> tuple[int, float]:
        """The key's queued jobs and the dollars it submitted on UTC `day`: a cheap read of
        what `JobStore.create` checks its quotas against."""
        ...


class TaskStore(Protocol):
    """Every part over one store, and its lifecycle."""

    @property
    def jobs(self) -> JobStore:
        """The API's part."""
        ...

    @property
    def queue(self) -> QueueStore:
        """The workers' part."""
        ...

    @property
    def outbox(self) -> OutboxStore:
        """The delivery sender's part."""
        ...

    @property
    def keys(self) -> KeyStore:
        """API keys."""
        ...

    @property
    def media(self) -> MediaStore:
        """Stored inputs."""
        ...

    @property
    def workers(self) -> WorkerRegistry:
        """Worker heartbeats."""
        ...

    @property
    def sweep(self) -> SweepStore:
        """Expired result files."""
        ...

    @property
    def usage(self) -> UsageStore:
        """The usage ledger."""
        ...

    async def migrate(self) -> None:
        """Create or upgrade the schema."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

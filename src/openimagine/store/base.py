"""The `TaskStore` protocol: the one seam between the front doors, the workers and the data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from openimagine.domain.jobs import Claim, Job, JobStatus, Result


@dataclass(frozen=True, slots=True)
class NewJob:
    """What `create_job` inserts: the job and its pre-allocated results."""

    task_uuid: str
    owner: str
    task_type: str
    model: str
    request: str
    request_hash: str
    max_attempts: int
    video_uuids: Sequence[str]
    seeds: Sequence[int]
    costs: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class ResultUpdate:
    """A finished result, written by the worker that holds the lease."""

    video_uuid: str
    blob_key: str
    content_type: str
    size_bytes: int
    cost: float | None
    nsfw: bool | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A delivery to send after commit (webhook POST or upload PUT)."""

    id: str
    task_uuid: str
    kind: str
    url: str
    payload: str
    attempts: int = 0  # tries made so far, counting the one a claim starts


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (only its hash is kept)."""

    id: str
    label: str
    prefix: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class MediaItem:
    """An uploaded input (imageUpload / mediaStorage)."""

    media_uuid: str
    owner: str
    kind: str
    blob_key: str
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process as it registered itself."""

    id: str
    host: str
    pid: int
    state: str
    backend: str
    weights: str
    random_weights: bool
    started_at: float
    heartbeat_at: float


class TaskStore(Protocol):
    """Jobs, results, keys, media, outbox and workers, behind one interface.

    Every write a worker makes on a job is fenced by its lease token: once the lease is lost
    (expired and re-claimed) the write raises `LeaseLost` and changes nothing.
    """

    async def migrate(self) -> None:
        """Create or upgrade the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def add_api_key(self, key_hash: str, label: str, prefix: str) -> str:
        """Store a key hash (idempotent); return its id."""

    async def find_api_key(self, key_hash: str) -> str | None:
        """The id of an active key with this hash."""

    async def list_api_keys(self) -> list[ApiKey]:
        """All keys, newest first."""

    async def revoke_api_key(self, key_id_or_prefix: str) -> bool:
        """Revoke by id or prefix; False when nothing matched."""

    async def create_job(self, new: NewJob) -> tuple[Job, list[Result], bool]:
        """Insert a job and its results; idempotent on (task_uuid, request_hash).

        Returns the stored job, its results, and whether this call created it. Raises
        `Conflict` when the task UUID exists with a different request or owner.
        """

    async def get_job(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        """A job and its results (owner None: any owner)."""

    async def get_result(self, video_uuid: str) -> Result | None:
        """One result by its videoUUID."""

    async def get_job_and_place(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        """A job, its results and, while queued, how many jobs are ahead of it."""
        ...

    async def queue_position(self, task_uuid: str) -> int | None:
        """How many queued jobs are ahead of this one (None when not queued)."""

    async def claim_next(self, worker_id: str, lease_s: float) -> Claim | None:
        """Lease the next runnable job: queued, or running with an expired lease."""

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        """Extend the lease; return whether cancel was requested."""

    async def set_progress(self, task_uuid: str, token: str, progress: int) -> bool:
        """Record progress (0-100); return whether cancel was requested."""

    async def complete_result(
        self, task_uuid: str, token: str, update: ResultUpdate, outbox: Sequence[OutboxItem] = ()
    ) -> None:
        """Mark one result successful, with its outbox rows, in one transaction."""

    async def finish_job(
        self,
        task_uuid: str,
        token: str,
        status: JobStatus,
        error_code: str | None = None,
        error_message: str | None = None,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        """Terminal transition; results still processing take the error."""

    async def release_job(self, task_uuid: str, token: str) -> None:
        """Hand a running job back to the queue without spending an attempt."""

    async def reap_expired(self) -> int:
        """Fail (or cancel) jobs whose lease expired after their last attempt."""

    async def request_cancel(self, task_uuid: str, owner: str | None) -> Job:
        """Cancel a queued job now, or flag a running one for its worker."""

    async def add_media(self, item: MediaItem) -> None:
        """Store an uploaded input's metadata."""

    async def get_media(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        """An uploaded input (owner None: any owner)."""

    async def delete_media(self, media_uuid: str, owner: str) -> MediaItem | None:
        """Remove an uploaded input; return what was removed."""

    async def register_worker(self, info: WorkerInfo) -> None:
        """Insert or replace a worker's row."""

    async def worker_heartbeat(self, worker_id: str, state: str) -> None:
        """Refresh a worker's row."""

    async def list_workers(self, fresh_within_s: float | None = None) -> list[WorkerInfo]:
        """Workers, optionally only those seen recently."""

    async def expired_blobs(self, limit: int) -> list[tuple[str, str]]:
        """(video_uuid, blob_key) of results whose URL expired while their blob is kept."""
        ...

    async def forget_blobs(self, video_uuids: list[str]) -> None:
        """Mark these results' blobs deleted."""
        ...

    async def claim_outbox(self, limit: int, lease_s: float) -> list[OutboxItem]:
        """Lease due deliveries."""

    async def outbox_done(self, item_id: str) -> None:
        """A delivery succeeded."""

    async def outbox_retry(self, item_id: str, error: str, next_at: float | None) -> None:
        """A delivery failed; try again at `next_at`, or give up when None."""

    async def outbox_status(self, task_uuid: str) -> list[dict[str, object]]:
        """Deliveries of a job, for inspection."""

    async def list_jobs(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        """A page of the owner's jobs with their results, ordered by creation (newest first
        when `descending`), starting after the job `after`. Raises `NotFound` when `after`
        is not one of the owner's jobs."""
        ...

    async def delete_job(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        """Remove a job that no worker holds, with its results and deliveries; return what
        was removed (None when the owner has no such job). Raises `Conflict` while it runs."""
        ...

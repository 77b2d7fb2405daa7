"""Row ↔ domain record conversion."""

from __future__ import annotations

from typing import Any

from openimagine.domain.jobs import Job, JobStatus, Result, ResultStatus
from openimagine.store.base import MediaItem, OutboxItem, WorkerInfo


def to_job(row: Any) -> Job:
    """A `jobs` row as a `Job`."""
    m = row._mapping
    return Job(
        task_uuid=m["task_uuid"],
        owner=m["owner"],
        task_type=m["task_type"],
        model=m["model"],
        request=m["request"],
        request_hash=m["request_hash"],
        status=JobStatus(m["status"]),
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        progress=m["progress"],
        cancel_requested=bool(m["cancel_requested"]),
        number_results=m["number_results"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        lease_owner=m["lease_owner"],
        lease_token=m["lease_token"],
        lease_expires_at=m["lease_expires_at"],
        error_code=m["error_code"],
        error_message=m["error_message"],
    )


def to_result(row: Any) -> Result:
    """A `results` row as a `Result`."""
    m = row._mapping
    return Result(
        video_uuid=m["video_uuid"],
        task_uuid=m["task_uuid"],
        index=m["idx"],
        seed=m["seed"],
        status=ResultStatus(m["status"]),
        blob_key=m["blob_key"],
        content_type=m["content_type"],
        size_bytes=m["size_bytes"],
        cost=m["cost"],
        nsfw=m["nsfw"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        completed_at=m["completed_at"],
        expires_at=m["expires_at"],
    )


def to_media(row: Any) -> MediaItem:
    """A `media` row as a `MediaItem`."""
    return MediaItem(**dict(row._mapping))


def to_worker(row: Any) -> WorkerInfo:
    """A `workers` row as a `WorkerInfo`."""
    m = dict(row._mapping)
    m["random_weights"] = bool(m["random_weights"])
    return WorkerInfo(**m)


def to_outbox(row: Any) -> OutboxItem:
    """A `webhook_outbox` row as an `OutboxItem`."""
    m = row._mapping
    return OutboxItem(
        id=m["id"],
        task_uuid=m["task_uuid"],
        kind=m["kind"],
        url=m["url"],
        payload=m["payload"],
        attempts=m["attempts"],
    )

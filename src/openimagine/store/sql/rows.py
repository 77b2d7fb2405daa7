"""Rows ↔ domain records."""

from __future__ import annotations

from typing import Any

from openimagine.domain.deliveries import Delivery, DeliveryEvent, DeliveryKind, DeliveryStatus
from openimagine.domain.generation import GenerationJob
from openimagine.domain.jobs import Job, JobStatus, Result, ResultStatus
from openimagine.domain.records import MediaItem, MediaKind, WorkerInfo, WorkerState


def to_job(row: Any) -> Job:
    """A `jobs` row as a `Job` (its stored request parsed once, here)."""
    m = row._mapping
    return Job(
        task_uuid=m["task_uuid"],
        owner=m["owner"],
        task_type=m["task_type"],
        spec=GenerationJob.from_json(m["request"]),
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
    m = dict(row._mapping)
    m["kind"] = MediaKind(m["kind"])
    return MediaItem(**m)


def to_worker(row: Any) -> WorkerInfo:
    """A `workers` row as a `WorkerInfo`."""
    m = dict(row._mapping)
    m["state"] = WorkerState(m["state"])
    m["random_weights"] = bool(m["random_weights"])
    return WorkerInfo(**m)


def to_delivery(row: Any) -> Delivery:
    """A `deliveries` row as a `Delivery`."""
    m = row._mapping
    return Delivery(
        id=m["id"],
        task_uuid=m["task_uuid"],
        kind=DeliveryKind(m["kind"]),
        event=DeliveryEvent(m["event"]),
        url=m["url"],
        video_uuid=m["video_uuid"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        last_error=m["last_error"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
    )


def fields(obj: Any) -> dict[str, Any]:
    """A slotted dataclass as column values (enums as their values)."""
    return {name: getattr(obj, name) for name in obj.__slots__}

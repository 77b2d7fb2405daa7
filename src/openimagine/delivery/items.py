"""Runware response items for a job's results: one renderer for getResponse and webhooks."""

from __future__ import annotations

from typing import Any

from openimagine.delivery.signing import UrlSigner
from openimagine.domain.jobs import Job, Result, ResultStatus
from openimagine.domain.params import VideoRequest


def media_path(blob_key: str) -> str:
    """The URL path under which a blob is served."""
    return f"/media/{blob_key}"


def result_item(
    job: Job, result: Result, request: VideoRequest, signer: UrlSigner
) -> dict[str, Any]:
    """A `data` item (processing or success) for one result.

    Processing items carry the pre-allocated `videoUUID` (so the legacy SDK polls every 3 s
    instead of timing out per poll) and `progress`; success items add the signed URL, the
    seed and, with `includeCost`, the cost.
    """
    item: dict[str, Any] = {
        "taskType": job.task_type,
        "taskUUID": job.task_uuid,
        "videoUUID": result.video_uuid,
        "status": result.status.value,
    }
    if result.status is ResultStatus.PROCESSING:
        item["progress"] = job.progress
        return item
    item["progress"] = 100
    if result.blob_key is not None and result.expires_at is not None:
        item["videoURL"] = signer.url(media_path(result.blob_key), result.expires_at)
    item["seed"] = result.seed
    if request.include_cost and result.cost is not None:
        item["cost"] = result.cost
    if result.nsfw is not None:
        item["NSFWContent"] = result.nsfw
    return item


def error_item(job: Job, result: Result) -> dict[str, Any]:
    """An `errors` item for a failed or canceled result."""
    return {
        "code": result.error_code or "inferenceError",
        "message": result.error_message or "Generation failed.",
        "status": ResultStatus.ERROR.value,
        "taskType": job.task_type,
        "taskUUID": job.task_uuid,
        "videoUUID": result.video_uuid,
    }


def job_items(
    job: Job, results: list[Result], signer: UrlSigner
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data items, error items) for every result of a job."""
    request = VideoRequest.from_json(job.request)
    data, errors = [], []
    for r in results:
        if r.status is ResultStatus.ERROR:
            errors.append(error_item(job, r))
        else:
            data.append(result_item(job, r, request, signer))
    return data, errors

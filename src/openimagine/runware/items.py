"""Runware response items: acknowledgements, getResponse items and webhook bodies, rendered
from the service's views. One renderer serves polling and webhooks, so both say the same."""

from __future__ import annotations

from typing import Any

from openimagine.domain.deliveries import DeliveryStatus
from openimagine.domain.jobs import Job, ResultStatus
from openimagine.domain.views import JobView, MediaView, ResultView

TASK_TYPE = "videoInference"


def acknowledgement(task_uuid: str) -> dict[str, Any]:
    """A queued videoInference task's acknowledgement.

    It deliberately carries no videoUUID: the legacy SDK reads one there as a finished result.
    """
    return {"taskType": TASK_TYPE, "taskUUID": task_uuid}


def result_item(job: Job, view: ResultView, queue_position: int | None = None) -> dict[str, Any]:
    """A `data` item (processing or success) for one result.

    Processing items carry the pre-allocated `videoUUID` (so the legacy SDK polls every 3 s
    instead of timing out per poll), `progress` and, while queued, `queuePosition`; success
    items add the URL, the seed and, with `includeCost`, the cost.
    """
    result = view.result
    item: dict[str, Any] = {
        "taskType": job.task_type,
        "taskUUID": job.task_uuid,
        "videoUUID": result.video_uuid,
        "status": result.status.value,
    }
    if result.status is ResultStatus.PROCESSING:
        item["progress"] = job.progress
        if queue_position is not None:
            # How many jobs run first: progress a client can show before generation starts.
            item["queuePosition"] = queue_position
    else:
        item["progress"] = 100
        if view.url is not None:
            item["videoURL"] = view.url
        item["seed"] = result.seed
        if job.spec.include_cost and result.cost is not None:
            item["cost"] = result.cost
        if result.nsfw is not None:
            item["NSFWContent"] = result.nsfw
    if view.upload is not None:
        item["uploadStatus"] = view.upload.status.value
        if view.upload.status is DeliveryStatus.FAILED:
            item["uploadError"] = view.upload.last_error
    return item


def error_item(job: Job, view: ResultView) -> dict[str, Any]:
    """An `errors` item for a failed or canceled result."""
    result = view.result
    return {
        "code": result.error_code or "inferenceError",
        "message": result.error_message or "Generation failed.",
        "status": ResultStatus.ERROR.value,
        "taskType": job.task_type,
        "taskUUID": job.task_uuid,
        "videoUUID": result.video_uuid,
    }


def job_items(view: JobView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data items, error items) for every result of a job: Runware's getResponse."""
    data, errors = [], []
    for result in view.results:
        if result.result.status is ResultStatus.ERROR:
            errors.append(error_item(view.job, result))
        else:
            data.append(result_item(view.job, result, view.queue_position))
    return data, errors


def media_item(task_type: str, task_uuid: str, view: MediaView) -> dict[str, Any]:
    """imageUpload's or mediaStorage upload's answer: the stored media's UUID and URL."""
    if task_type == "imageUpload":
        return {
            "taskType": task_type,
            "taskUUID": task_uuid,
            "imageUUID": view.item.media_uuid,
            "imageURL": view.url,
        }
    return {
        "taskType": task_type,
        "taskUUID": task_uuid,
        "operation": "upload",
        "mediaUUID": view.item.media_uuid,
        "mediaURL": view.url,
    }

"""Routes on one task beside the Runware protocol: cancel it, and see its deliveries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from openimagine.api.deps import Owner, Services
from openimagine.api.runware import RunwareRoute
from openimagine.domain.deliveries import Delivery, DeliveryStatus
from openimagine.models.rules import check_task_uuid

router = APIRouter(tags=["tasks"], route_class=RunwareRoute)


@router.post("/v1/tasks/{task_uuid}/cancel", summary="Cancel a task")
async def cancel_task(task_uuid: str, owner: Owner, deps: Services) -> JSONResponse:
    """Cancel every unfinished result of a task: a queued task at once, a running one within
    one denoising step. Its results are then reported with the error code `taskCancelled`."""
    job = await deps.videos.cancel(owner, check_task_uuid(task_uuid))
    return JSONResponse({"data": [{"taskUUID": job.task_uuid, "status": job.status.value}]})


@router.get("/v1/tasks/{task_uuid}/deliveries", summary="Webhook and upload deliveries")
async def task_deliveries(task_uuid: str, owner: Owner, deps: Services) -> JSONResponse:
    """Each webhook POST or upload PUT of a task: `pending`, `delivered` or `failed`, with
    the tries made and the last error."""
    rows = await deps.videos.deliveries(owner, check_task_uuid(task_uuid))
    return JSONResponse({"data": [_delivery(d) for d in rows]})


def _delivery(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind.value,
        "event": d.event.value,
        "url": d.url,
        "status": d.status.value,
        "attempts": d.attempts,
        "lastError": d.last_error,
        "nextAttemptAt": d.next_attempt_at if d.status is DeliveryStatus.PENDING else None,
        "deliveredAt": d.delivered_at,
    }

"""Routes on one task beside the Runware protocol: cancel it, and see its deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openimagine.api.tasks import auth_error_item
from openimagine.errors import AuthError, OpenImagineError
from openimagine.service import VideoService

router = APIRouter(tags=["tasks"])


class Refused(Exception):
    """A request refused before its route ran (bad key); carries the response."""

    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _service(request: Request) -> VideoService:
    service: VideoService = request.app.state.processor.service
    return service


async def _owner(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" else None
    try:
        return await _service(request).authenticate(key)
    except AuthError as err:
        raise Refused(
            JSONResponse({"errors": [auth_error_item(err)]}, status_code=err.http_status)
        ) from err


Owner = Annotated[str, Depends(_owner)]


def refused_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Answer a refused dependency with the response it carries."""
    assert isinstance(exc, Refused)  # noqa: S101 - registered for Refused only
    return exc.response


@router.post("/v1/tasks/{task_uuid}/cancel", summary="Cancel a task")
async def cancel_task(task_uuid: str, owner: Owner, request: Request) -> JSONResponse:
    """Cancel every unfinished result of a task: a queued task at once, a running one within
    one denoising step. Its results are then reported with the error code `taskCancelled`."""
    try:
        job = await _service(request).cancel(owner, task_uuid)
    except OpenImagineError as err:
        return JSONResponse({"errors": [err.item()]}, status_code=err.http_status)
    return JSONResponse({"data": [{"taskUUID": job.task_uuid, "status": job.status.value}]})


@router.get("/v1/tasks/{task_uuid}/deliveries", summary="Webhook and upload deliveries")
async def task_deliveries(task_uuid: str, owner: Owner, request: Request) -> JSONResponse:
    """Each webhook POST or upload PUT of a task: `pending`, `delivered` or `failed`, with
    the tries made and the last error."""
    try:
        rows = await _service(request).deliveries(owner, task_uuid)
    except OpenImagineError as err:
        return JSONResponse({"errors": [err.item()]}, status_code=err.http_status)
    return JSONResponse({"data": [_delivery(r) for r in rows]})


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "nextAttemptAt": row["next_attempt_at"] if row["status"] == "pending" else None,
        "deliveredAt": row["delivered_at"],
    }

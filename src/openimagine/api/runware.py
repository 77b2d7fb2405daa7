"""Runware wire protocol: `POST /v1` (REST) and `WS /v1` (WebSocket)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from openimagine.api.tasks import Reply, TaskProcessor, auth_error_item, parse_tasks
from openimagine.errors import AuthError, InvalidInput, OpenImagineError, PayloadTooLarge

log = logging.getLogger(__name__)
router = APIRouter()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The request body is larger than {limit} bytes.", parameter="body", max=limit
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The request body is larger than {limit} bytes.", parameter="body", max=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"The request body is not valid JSON: {exc}.",
            code="invalidRequestBody",
            parameter="body",
        ) from None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error_response(err: OpenImagineError, *, auth: bool = False) -> JSONResponse:
    item = auth_error_item(err) if auth else err.item()
    return JSONResponse({"errors": [item]}, status_code=err.http_status)


@router.post("/v1", summary="Runware task array (REST)", tags=["runware"])
async def post_tasks(request: Request) -> JSONResponse:
    """Run a JSON array of Runware tasks. Authenticate with `Authorization: Bearer <key>` or a
    leading `{"taskType": "authentication", "apiKey": ...}` task."""
    processor: TaskProcessor = request.app.state.processor
    try:
        tasks = parse_tasks(_json(await read_body(request, request.app.state.max_body_bytes)))
    except OpenImagineError as err:
        return _error_response(err)
    key = _bearer(request)
    first = tasks[0]
    if isinstance(first, dict) and first.get("taskType") == "authentication":
        key = key or first.get("apiKey")
        tasks = tasks[1:]
    try:
        owner = await processor.service.authenticate(key)
    except AuthError as err:
        return _error_response(err, auth=True)
    reply = Reply()
    await processor.run(owner, tasks, reply)
    return JSONResponse(reply.envelope(), status_code=reply.status)


class _Session:
    """One WebSocket connection's state."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.session_uuid: str | None = None


async def _authenticate_ws(
    processor: TaskProcessor, session: _Session, task: dict[str, Any]
) -> dict[str, Any]:
    owner = await processor.service.authenticate(task.get("apiKey"))
    session.owner = owner
    resumed = task.get("connectionSessionUUID")
    session.session_uuid = resumed if isinstance(resumed, str) and resumed else str(uuid.uuid4())
    return {"taskType": "authentication", "connectionSessionUUID": session.session_uuid}


async def _ws_message(processor: TaskProcessor, session: _Session, raw: str) -> Reply:
    reply = Reply()
    try:
        tasks = parse_tasks(_json(raw.encode()))
    except OpenImagineError as err:
        reply.add_error(err)
        return reply
    rest: list[Any] = []
    for task in tasks:
        if isinstance(task, dict) and task.get("taskType") == "authentication":
            try:
                reply.data.append(await _authenticate_ws(processor, session, task))
            except AuthError as err:
                reply.errors.append(auth_error_item(err))
        else:
            rest.append(task)
    if not rest:
        return reply
    if session.owner is None:
        reply.errors.append(
            auth_error_item(
                AuthError(
                    'Authenticate first: send [{"taskType":"authentication","apiKey":...}].',
                    code="missingApiKey",
                    parameter="apiKey",
                )
            )
        )
        return reply
    await processor.run(session.owner, rest, reply)
    return reply


@router.websocket("/v1")
async def websocket_tasks(websocket: WebSocket) -> None:
    """Runware WebSocket: authenticate first, then any task; replies are JSON objects."""
    processor: TaskProcessor = websocket.app.state.processor
    idle_s: float = websocket.app.state.ws_idle_timeout_s
    limit: int = websocket.app.state.max_body_bytes
    await websocket.accept()
    session = _Session()
    try:
        while True:
            with anyio.fail_after(idle_s):
                raw = await websocket.receive_text()
            if len(raw) > limit:
                err = PayloadTooLarge(
                    f"The message is larger than {limit} bytes.", parameter="body", max=limit
                )
                await websocket.send_json({"errors": [err.item()]})
                continue
            reply = await _ws_message(processor, session, raw)
            await websocket.send_json(reply.envelope())
    except TimeoutError:
        await websocket.close(code=1000, reason="idle timeout")
    except WebSocketDisconnect:
        return

"""xAI-compatible REST: `POST /v1/videos/generations` and `/v1/videos/edits`, answered with a
`request_id` (the task's taskUUID), then polled at `GET /v1/videos/{request_id}`, which the
OpenAI door serves too and answers in the shape of the door that created the task
(`api.openai.routes.retrieve_video` calls `deferred_response` here).

The same service as every door: validation by the card (under xAI's field names), prices,
quotas, queue and files. Errors are OpenAI's envelope, which xAI's SDKs read.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from openimagine.api.deps import ApiDeps, Owner, Services
from openimagine.api.openai.errors import OpenAIRoute
from openimagine.api.openai.schemas import ErrorResponse
from openimagine.api.xai.mapping import (
    DOOR,
    deferred,
    deferred_json,
    edit_request,
    extension_request,
    generation_request,
)
from openimagine.domain.requests import VideoRequest
from openimagine.domain.views import JobView

_bearer = HTTPBearer(auto_error=False, description="An API key: the same keys as the Runware API.")
router = APIRouter(
    tags=["videos (xAI-compatible)"], route_class=OpenAIRoute, dependencies=[Depends(_bearer)]
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `param` names the field."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    "default": {"model": ErrorResponse, "description": "Any other error (413, 429, 5xx)."},
}
_BODY = Body(
    examples=[{"model": "grok-imagine-video", "prompt": "a lighthouse at dusk", "duration": 8}],
    description="xAI's request body (see the README's xAI section for the fields served).",
)


# `@ai-sdk/xai` sends one with every submit and again with its retries after a 429 or a 5xx:
# the same key (and body) is the same video, never a second paid one; another body with it
# is a 409. Its own namespace: an OpenAI door key never names an xAI door task.
_IDEMPOTENCY = uuid.UUID("0b7d9e55-4f0a-4c55-8d8c-6f1a3e2b9c40")
_IdempotencyKey = Annotated[
    str | None,
    Header(description="Retries with the same key return the same request_id."),
]


async def _start(
    request: VideoRequest, owner: str, deps: ApiDeps, key: str | None
) -> StartDeferred:
    """Queue the request as an xAI door task; its id is the request_id."""
    task_uuid = str(uuid.uuid5(_IDEMPOTENCY, f"{owner}:{key}")) if key else str(uuid.uuid4())
    await deps.videos.submit(owner, task_uuid, request, door=DOOR)
    return StartDeferred(request_id=task_uuid)


class StartDeferred(BaseModel):
    """A queued video: poll `GET /v1/videos/{request_id}`."""

    request_id: str = Field(description="The video's id: its Runware taskUUID.")


@router.post("/v1/videos/generations", summary="Generate a video (xAI)", responses=_ERRORS)
async def generate(
    body: Annotated[dict[str, Any], _BODY],
    owner: Owner,
    deps: Services,
    idempotency_key: _IdempotencyKey = None,
) -> StartDeferred:
    """Text to video at `aspect_ratio` × `resolution`, or from `image` (the image's aspect
    decides), `duration` seconds (default 8), with audio."""
    return await _start(
        generation_request(body, deps.card, deps.delivery), owner, deps, idempotency_key
    )


@router.post("/v1/videos/edits", summary="Edit a video (xAI)", responses=_ERRORS)
async def edit(
    body: Annotated[dict[str, Any], _BODY],
    owner: Owner,
    deps: Services,
    idempotency_key: _IdempotencyKey = None,
) -> StartDeferred:
    """The `video` restyled by the prompt, at its own size and length, with audio."""
    return await _start(edit_request(body, deps.card, deps.delivery), owner, deps, idempotency_key)


@router.post("/v1/videos/extensions", summary="Extend a video (xAI)", responses=_ERRORS)
async def extend(
    body: Annotated[dict[str, Any], _BODY],
    owner: Owner,
    deps: Services,
    idempotency_key: _IdempotencyKey = None,
) -> StartDeferred:
    """The `video` followed by `duration` more seconds (2-10, default 6) that continue it,
    audio included, at its size: extensions chain. Priced as the whole output's seconds at
    the tier's rate plus the input's seconds at the video-input rate."""
    return await _start(
        extension_request(body, deps.card, deps.delivery), owner, deps, idempotency_key
    )


def deferred_response(view: JobView) -> JSONResponse:
    """xAI's answer to a poll: 202 with a body while pending (`@ai-sdk/xai` fails on an empty
    one), 200 once done, failed or expired."""
    state = deferred(view)
    return JSONResponse(deferred_json(state), status_code=202 if state.status == "pending" else 200)

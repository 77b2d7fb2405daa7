"""OpenAI-compatible `/v1/videos`: the same jobs as the Runware API, seen as OpenAI Videos.

A create maps OpenAI's fields straight to a `VideoRequest` (`mapping`) and submits it through
the same service as every door, so prices, idempotency and the queue are shared; a video's
id is its taskUUID. The routes read JSON or multipart/form-data (what the official SDK sends)
and answer errors in OpenAI's envelope (`errors`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.security import HTTPBearer

from openimagine.api.deps import Owner, Services
from openimagine.api.openai.errors import OpenAIRoute
from openimagine.api.openai.mapping import video_object, video_request
from openimagine.api.openai.schemas import (
    ErrorResponse,
    Video,
    VideoCreateRequest,
    VideoDeleted,
    VideoList,
)
from openimagine.api.xai.mapping import DOOR as XAI_DOOR
from openimagine.api.xai.routes import deferred_response
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.domain.jobs import ResultStatus
from openimagine.errors import NotFound
from openimagine.media.thumbnail import first_frame_webp
from openimagine.models.rules import check_task_uuid

DOOR = "openai"  # `GenerationJob.door` of the videos created here
POLL_AFTER_MS = 1000  # read by the SDK's `poll` helper from `openai-poll-after-ms`
_IDEMPOTENCY = uuid.UUID("5b0f3f7e-8a0c-4d4e-9a55-3f8f6f0c2a11")  # uuid5 namespace of keys

# The bearer scheme, declared for /docs; `Owner` does the authentication.
_bearer = HTTPBearer(auto_error=False, description="An API key: the same keys as the Runware API.")
router = APIRouter(
    tags=["videos (OpenAI-compatible)"], route_class=OpenAIRoute, dependencies=[Depends(_bearer)]
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `param` names the field."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "No such video (for this key)."},
    # Also keeps FastAPI from documenting its 422: validation errors are 400s here.
    "default": {"model": ErrorResponse, "description": "Any other error (409, 413, 5xx)."},
}
# Ids are task UUIDs, stored in lower case: any spelling finds its video.
VideoId = Annotated[str, PathParam(description="The video's id: its Runware taskUUID.")]

# -- routes ----------------------------------------------------------------------------------

_FORM_FIELDS = ("prompt", "model", "size", "seconds")
_MULTIPART_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        **{
                            name: {
                                "type": "string",
                                "description": VideoCreateRequest.model_fields[name].description,
                            }
                            for name in _FORM_FIELDS
                        },
                        "input_reference": {
                            "type": "string",
                            "format": "binary",
                            "description": "An image file (PNG, JPEG, WebP, BMP, GIF): the "
                            "first frame.",
                        },
                    },
                }
            }
        }
    }
}


@router.post(
    "/v1/videos",
    summary="Create a video",
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "Key reused."}},
    openapi_extra=_MULTIPART_DOC,
)
async def create_video(
    body: VideoCreateRequest,
    owner: Owner,
    deps: Services,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Retries with the same key return the same video (a different request "
            "with it is a 409). Without one, every create is a new video."
        ),
    ] = None,
) -> Video:
    """Queue a video: JSON, or multipart/form-data with an `input_reference` image file (as
    the official `openai` SDK sends). It is a Runware `videoInference` task whose taskUUID is
    the video's id, priced and validated by the model card."""
    if idempotency_key:
        task_uuid = str(uuid.uuid5(_IDEMPOTENCY, f"{owner}:{idempotency_key}"))
    else:
        task_uuid = str(uuid.uuid4())
    request = video_request(body, deps.card, deps.delivery)
    await deps.videos.submit(owner, task_uuid, request, door=DOOR)
    return video_object(await deps.videos.get(owner, task_uuid))


@router.get("/v1/videos", summary="List videos", responses=_ERRORS)
async def list_videos(
    owner: Owner,
    deps: Services,
    after: Annotated[
        str | None, Query(description="The id of the last video of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Videos per page, 1-100.")] = 20,
    order: Annotated[
        Literal["asc", "desc"], Query(description="By creation time; newest first is `desc`.")
    ] = "desc",
) -> VideoList:
    """The key's videos (Runware tasks included), a page at a time."""
    page, has_more = await deps.videos.page(
        owner, after=after, limit=limit, descending=order == "desc"
    )
    data = [video_object(view) for view in page]
    return VideoList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get(
    "/v1/videos/{video_id}", summary="Retrieve a video", responses=_ERRORS, response_model=Video
)
async def retrieve_video(
    video_id: VideoId, owner: Owner, deps: Services, response: Response
) -> Video | Response:
    """A video's status, progress and, once failed, its error. A video created through the
    xAI door (`POST /v1/videos/generations`) answers in xAI's shape instead."""
    view = await deps.videos.get(owner, video_id.lower())
    if view.job.spec.door == XAI_DOOR:
        return deferred_response(view)
    video = video_object(view)
    if video.status in ("queued", "in_progress"):
        response.headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)
    return video


@router.delete(
    "/v1/videos/{video_id}",
    summary="Delete a video",
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "It is running."}},
)
async def delete_video(video_id: VideoId, owner: Owner, deps: Services) -> VideoDeleted:
    """Delete a finished or queued video, with its files. A running one is a 409: cancel it
    (`POST /v1/videos/{video_id}/cancel`) and delete it once it has stopped."""
    job = await deps.videos.delete(owner, video_id.lower())
    return VideoDeleted(id=job.task_uuid, deleted=True)


@router.post("/v1/videos/{video_id}/cancel", summary="Cancel a video", responses=_ERRORS)
async def cancel_video(video_id: VideoId, owner: Owner, deps: Services) -> Video:
    """Cancel a video: a queued one at once, a running one within one denoising step. It then
    fails with the error code `task_cancelled`. (Not in OpenAI's API.)"""
    task_uuid = check_task_uuid(video_id)
    await deps.videos.cancel(owner, task_uuid)
    return video_object(await deps.videos.get(owner, task_uuid))


@router.get(
    "/v1/videos/{video_id}/content",
    summary="Download a video or its thumbnail",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {
            "description": "The file.",
            "content": {
                "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                "image/webp": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    },
)
async def video_content(
    video_id: VideoId,
    owner: Owner,
    deps: Services,
    variant: Annotated[
        Literal["video", "thumbnail"],
        Query(
            description="`video`: the file (MP4, WebM or MOV); `thumbnail`: its first frame "
            "as WebP."
        ),
    ] = "video",
) -> Response:
    """The bytes of a completed video (Range requests supported), or its thumbnail."""
    view = await deps.videos.get(owner, video_id.lower())
    first = view.results[0].result if view.results else None
    if first is None or first.status is not ResultStatus.SUCCESS or first.blob_key is None:
        state = "failed" if view.job.status.terminal else "is not completed yet"
        raise NotFound(f"Video {video_id} {state}: it has no content.", code="videoNotReady")
    if first.expires_at is not None and first.expires_at <= time.time():
        raise NotFound(f"The content of video {video_id} has expired.", code="videoExpired")
    path = deps.blobs.local_path(first.blob_key)
    if variant == "thumbnail":
        try:
            webp = await anyio.to_thread.run_sync(_thumbnail, deps.blobs, first.blob_key)
        except BlobNotFound:
            raise NotFound(
                f"The content of video {video_id} has expired.", code="videoExpired"
            ) from None
        if webp is None:
            raise NotFound("The video has no frames.", code="videoNotFound", parameter="video_id")
        return Response(webp, media_type="image/webp")
    if path is None:  # in object storage: the client downloads it from there
        url = deps.blobs.direct_url(first.blob_key, first.expires_at or time.time() + 3600)
        if url is None:
            raise NotFound(f"The content of video {video_id} has expired.", code="videoExpired")
        return RedirectResponse(url, status_code=307)
    return FileResponse(path, media_type=first.content_type or "application/octet-stream")


def _thumbnail(blobs: BlobStore, key: str) -> bytes | None:
    """The first frame of a stored video as WebP (a local copy when it lives elsewhere)."""
    with blobs.as_file(key) as path:
        return first_frame_webp(path)

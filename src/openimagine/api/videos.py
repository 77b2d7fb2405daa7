"""OpenAI-compatible `/v1/videos`: the same jobs as the Runware API, seen as OpenAI Videos.

A create becomes a Runware `videoInference` task submitted through `VideoService.submit_video`,
so validation, pricing, idempotency and the queue are the Runware API's; a video's id is its
taskUUID. The routes read JSON or multipart/form-data (what the official SDK sends) and answer
errors in OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}` (see schemas).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from starlette.exceptions import HTTPException  # FastAPI's is a subclass; body errors raise this

from openimagine.api.runware import read_body
from openimagine.api.schemas import (
    ErrorResponse,
    Video,
    VideoCreateRequest,
    VideoDeleted,
    VideoList,
    domain_error,
    error_response,
    runware_task,
    validation_error,
    video_object,
)
from openimagine.domain.jobs import ResultStatus
from openimagine.errors import InvalidInput, NotFound, OpenImagineError
from openimagine.media.probe import decode_frames
from openimagine.service import VideoService

log = logging.getLogger(__name__)

POLL_AFTER_MS = 1000  # read by the SDK's `poll` helper from `openai-poll-after-ms`
_IDEMPOTENCY = uuid.UUID("5b0f3f7e-8a0c-4d4e-9a55-3f8f6f0c2a11")  # uuid5 namespace of keys

# -- request bodies: JSON, or multipart/form-data as the official SDK sends ---------------------


def _form_parts(body: bytes, content_type: str) -> list[tuple[str, str | None, str, bytes]]:
    """(name, filename, content type, bytes) of each part of a form body."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return [(k, None, "text/plain", v.encode()) for k, v in pairs]
    # compat: the stdlib MIME parser, so that multipart needs no extra dependency.
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidInput("Malformed multipart/form-data body.", code="invalidRequestBody")
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts.append((name, part.get_filename(), part.get_content_type(), payload))
    return parts


def _form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """A form body as the JSON object `VideoCreateRequest` reads: an image file part named
    `input_reference` becomes `{"image_url": <data URI>}`, `a[b]` fields nest."""
    fields: dict[str, Any] = {}
    for name, filename, part_type, data in _form_parts(body, content_type):
        if filename is not None:
            if name != "input_reference":
                raise InvalidInput(f"Unexpected file field {name!r}.", parameter=name)
            uri = f"data:{part_type};base64,{base64.b64encode(data).decode()}"
            fields["input_reference"] = {"image_url": uri}
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name}: not UTF-8 text.", parameter=name) from None
        nested = re.fullmatch(r"(\w+)\[(\w+)\]", name)
        if nested is None:
            fields[name] = text
            continue
        group = fields.setdefault(nested[1], {})
        if not isinstance(group, dict):
            raise InvalidInput(
                f"{nested[1]} is given both whole and by its fields.", parameter=name
            )
        group[nested[2]] = text
    return fields


class _BufferedRequest(Request):
    """A request whose body was already read (and perhaps rewritten as JSON)."""

    def __init__(self, request: Request, body: bytes, content_type: str) -> None:
        scope = dict(request.scope)
        drop = (b"content-type", b"content-length")
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k not in drop] + [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        super().__init__(scope, request.receive)
        self._buffered = body

    async def body(self) -> bytes:
        """The buffered body."""
        return self._buffered


async def _as_json(request: Request) -> Request:
    body = await read_body(request, request.app.state.max_body_bytes)
    content_type = request.headers.get("content-type", "").lower()
    form = content_type.startswith("multipart/form-data") or (
        content_type.startswith("application/x-www-form-urlencoded")
        and not body.lstrip().startswith(b"{")  # compat: `curl -d '{...}'` without a type
    )
    if form:
        body = json.dumps(_form_fields(body, request.headers["content-type"])).encode()
    return _BufferedRequest(request, body, "application/json")


class _OpenAIRoute(APIRoute):
    """Reads form bodies as JSON, and answers every error in OpenAI's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                if request.method == "POST":
                    request = await _as_json(request)
                return await handler(request)
            except OpenImagineError as err:
                return domain_error(err)
            except RequestValidationError as exc:
                return validation_error(exc)
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), None, None)
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(500, "Internal server error.", None, "internal_server_error")

        return route


router = APIRouter(tags=["videos (OpenAI-compatible)"], route_class=_OpenAIRoute)
_bearer = HTTPBearer(auto_error=False, description="An API key: the same keys as the Runware API.")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `param` names the field."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "No such video (for this key)."},
    # Also keeps FastAPI from documenting its 422: validation errors are 400s here.
    "default": {"model": ErrorResponse, "description": "Any other error (409, 413, 5xx)."},
}


def _service(request: Request) -> VideoService:
    service: VideoService = request.app.state.processor.service
    return service


async def _owner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    key = credentials.credentials if credentials is not None else None
    return await _service(request).authenticate(key)


Owner = Annotated[str, Depends(_owner)]
VideoId = Annotated[str, PathParam(description="The video's id: its Runware taskUUID.")]


def _thumbnail(path: Path) -> bytes:
    """The first frame as WebP (blocking)."""
    frames = decode_frames(path)
    try:
        first = next(iter(frames), None)
    finally:
        if isinstance(frames, Generator):
            frames.close()
    if first is None:
        raise NotFound("The video has no frames.", code="videoNotFound", parameter="video_id")
    out = io.BytesIO()
    Image.fromarray(first).save(out, format="WEBP", quality=85)
    return out.getvalue()


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
    request: Request,
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
    service = _service(request)
    if idempotency_key:
        task_uuid = str(uuid.uuid5(_IDEMPOTENCY, f"{owner}:{idempotency_key}"))
    else:
        task_uuid = str(uuid.uuid4())
    await service.submit_video(owner, runware_task(body, service.card, task_uuid))
    return video_object(*await service.job(owner, task_uuid))


@router.get("/v1/videos", summary="List videos", responses=_ERRORS)
async def list_videos(
    owner: Owner,
    request: Request,
    after: Annotated[
        str | None, Query(description="The id of the last video of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Videos per page, 1-100.")] = 20,
    order: Annotated[
        Literal["asc", "desc"], Query(description="By creation time; newest first is `desc`.")
    ] = "desc",
) -> VideoList:
    """The key's videos (Runware tasks included), a page at a time."""
    page, has_more = await _service(request).list_jobs(
        owner, after=after, limit=limit, descending=order == "desc"
    )
    data = [video_object(job, results) for job, results in page]
    return VideoList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/v1/videos/{video_id}", summary="Retrieve a video", responses=_ERRORS)
async def retrieve_video(
    video_id: VideoId, owner: Owner, request: Request, response: Response
) -> Video:
    """A video's status, progress and, once failed, its error."""
    video = video_object(*await _service(request).job(owner, video_id))
    if video.status in ("queued", "in_progress"):
        response.headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)
    return video


@router.delete(
    "/v1/videos/{video_id}",
    summary="Delete a video",
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "It is running."}},
)
async def delete_video(video_id: VideoId, owner: Owner, request: Request) -> VideoDeleted:
    """Delete a finished or queued video, with its files. A running one is a 409: cancel it
    (`POST /v1/videos/{video_id}/cancel`) and delete it once it has stopped."""
    job = await _service(request).delete_job(owner, video_id)
    return VideoDeleted(id=job.task_uuid, deleted=True)


@router.post("/v1/videos/{video_id}/cancel", summary="Cancel a video", responses=_ERRORS)
async def cancel_video(video_id: VideoId, owner: Owner, request: Request) -> Video:
    """Cancel a video: a queued one at once, a running one within one denoising step. It then
    fails with the error code `task_cancelled`. (Not in OpenAI's API.)"""
    service = _service(request)
    await service.cancel(owner, video_id)
    return video_object(*await service.job(owner, video_id))


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
    request: Request,
    variant: Annotated[
        Literal["video", "thumbnail"],
        Query(
            description="`video`: the file (MP4, WebM or MOV); `thumbnail`: its first frame "
            "as WebP."
        ),
    ] = "video",
) -> Response:
    """The bytes of a completed video (Range requests supported), or its thumbnail."""
    service = _service(request)
    job, results = await service.job(owner, video_id)
    first = results[0] if results else None
    if first is None or first.status is not ResultStatus.SUCCESS or first.blob_key is None:
        state = "failed" if job.status.terminal else "is not completed yet"
        raise NotFound(f"Video {video_id} {state}: it has no content.", code="videoNotReady")
    path = service.blobs.path(first.blob_key)
    if path is None or (first.expires_at is not None and first.expires_at <= time.time()):
        raise NotFound(f"The content of video {video_id} has expired.", code="videoExpired")
    if variant == "thumbnail":
        return Response(await anyio.to_thread.run_sync(_thumbnail, path), media_type="image/webp")
    return FileResponse(path, media_type=first.content_type or "application/octet-stream")

"""The OpenAI-compatible `/v1/videos` API's shapes, and how they map to the Runware task.

The models follow the official `openai` package (`openai.types.Video`, `VideoCreateParams`,
`VideoDeleteResponse`, the cursor page of `videos.list`) and OpenAI's error envelope; their
`Field` descriptions document /docs. A create becomes a Runware `videoInference` task
(`runware_task`), a job is shown as a Video (`video_object`), and a domain error is answered
in OpenAI's envelope with the OpenAI name of the parameter (`domain_error`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from openimagine.domain.jobs import Job, JobStatus, Result
from openimagine.domain.params import VideoRequest
from openimagine.errors import InvalidInput, OpenImagineError
from openimagine.models.card import ModelCard

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


class ImageReference(BaseModel):
    """A first-frame image named by URL or by an uploaded media UUID (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(
        default=None,
        description="An http(s) URL of the image, or the image itself as a base64 data URL.",
        examples=["https://example.com/first-frame.png", "data:image/png;base64,iVBORw0KGgo..."],
    )
    file_id: str | None = Field(
        default=None,
        description="The UUID of an image stored with the Runware `imageUpload` or "
        "`mediaStorage` task (this server has no OpenAI Files API).",
        examples=["aac49721-1964-481a-ae78-8a4e29b91402"],
    )


class VideoCreateRequest(BaseModel):
    """`POST /v1/videos` as JSON. The same fields may be sent as multipart/form-data, where
    `input_reference` is an image file (the official SDK always sends multipart)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1,
        description="Text prompt that describes the video (Runware `positivePrompt`).",
        examples=["a lighthouse in a storm, waves crashing, thunder"],
    )
    model: str | None = Field(
        default=None,
        description="The model: `xai:grok-imagine@video`, the only one served (the default). "
        "Any other name, `sora-2` included, is refused with a 400 naming `model`.",
        examples=["xai:grok-imagine@video"],
    )
    size: str | None = Field(
        default=None,
        description="Output resolution `WIDTHxHEIGHT`, one of the model card's 14 sizes "
        "(480p: 480x480, 848x480, 480x848, 640x480, 480x640, 720x480, 480x720; 720p: 720x720, "
        "1280x720, 720x1280, 960x720, 720x960, 1088x720, 720x1088). Default `720x1280`, as "
        "OpenAI's. With `input_reference` the size picks the tier (480p or 720p) and the "
        "aspect ratio follows the image.",
        examples=["848x480", "1280x720"],
    )
    seconds: str | int | None = Field(
        default=None,
        description="Clip length in whole seconds, 1 to 15, as a string (OpenAI style) or an "
        "integer (Runware `duration`). Default `4`, as OpenAI's.",
        examples=["4"],
    )
    input_reference: ImageReference | None = Field(
        default=None,
        description="An image that becomes the first frame (image-to-video). In multipart "
        "requests, an image file part named `input_reference` (PNG, JPEG, WebP, BMP, GIF), "
        "or the fields `input_reference[image_url]` / `input_reference[file_id]`.",
    )


class VideoError(BaseModel):
    """Why a video failed."""

    code: str = Field(description="Machine-readable code.", examples=["inference_error"])
    message: str = Field(description="What went wrong.", examples=["Generation failed."])


class Video(BaseModel):
    """A video job: one Runware `videoInference` task, seen through OpenAI's Video object."""

    id: str = Field(
        description="The video's id: its Runware taskUUID (so `getResponse` finds it too).",
        examples=["6378aa49-9f31-414a-8e00-3076dea79124"],
    )
    object: Literal["video"] = Field(default="video", description="Always `video`.")
    status: VideoStatus = Field(
        description="`queued`, `in_progress`, `completed` or `failed` (a cancelled task is "
        "`failed` with the error code `task_cancelled`).",
        examples=["in_progress"],
    )
    progress: int = Field(ge=0, le=100, description="Approximate completion, 0-100.")
    created_at: int = Field(description="Unix seconds when the job was created.")
    completed_at: int | None = Field(
        default=None, description="Unix seconds when the job finished (completed or failed)."
    )
    expires_at: int | None = Field(
        default=None,
        description="Unix seconds after which the content is deleted (the task's `ttl`).",
    )
    model: str = Field(
        description="The model that produced it.", examples=["xai:grok-imagine@video"]
    )
    size: str = Field(description="Output resolution, `WIDTHxHEIGHT`.", examples=["848x480"])
    seconds: str = Field(description="Clip length in seconds.", examples=["4"])
    prompt: str | None = Field(default=None, description="The prompt it was generated from.")
    remixed_from_video_id: str | None = Field(
        default=None, description="Always null: remixes are not supported."
    )
    error: VideoError | None = Field(default=None, description="Set when `status` is `failed`.")


class VideoList(BaseModel):
    """A page of videos, newest first unless `order=asc`."""

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[Video] = Field(description="The videos of this page.")
    first_id: str | None = Field(description="The id of the first video on the page.")
    last_id: str | None = Field(
        description="The id of the last video on the page: pass it as `after` for the next."
    )
    has_more: bool = Field(description="Whether more videos follow this page.")


class VideoDeleted(BaseModel):
    """Confirmation that a video and its stored files are gone."""

    id: str = Field(description="The deleted video's id.")
    object: Literal["video.deleted"] = Field(
        default="video.deleted", description="Always `video.deleted`."
    )
    deleted: bool = Field(description="Always true.")


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str = Field(description="What is wrong, for people.")
    type: str = Field(
        description="`invalid_request_error` (4xx) or `server_error` (5xx).",
        examples=["invalid_request_error"],
    )
    param: str | None = Field(
        description="The request parameter at fault, if any.", examples=["size"]
    )
    code: str | None = Field(
        description="Machine-readable code.", examples=["unsupported_dimensions"]
    )


class ErrorResponse(BaseModel):
    """`{"error": {...}}`, as OpenAI's API answers errors."""

    error: ErrorDetail


DEFAULT_SIZE = "720x1280"  # OpenAI's default; one of the card's sizes
DEFAULT_SECONDS = 4  # OpenAI's default

_STATUS: dict[JobStatus, VideoStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}
# Runware parameter → the OpenAI request field it comes from.
_PARAMS: dict[str, str | None] = {
    "positivePrompt": "prompt",
    "width": "size",
    "height": "size",
    "resolution": "size",
    "duration": "seconds",
    "taskUUID": "video_id",
    "apiKey": None,
    "body": None,
}
_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "json_invalid": "invalid_json",
}

# -- errors in OpenAI's shape ----------------------------------------------------------------


def _snake(code: str) -> str:
    """`unsupportedDimensions` → `unsupported_dimensions`, `conflictTaskUUID` → `…_task_uuid`."""
    code = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", code)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", code).lower()


def _param(parameter: str | None) -> str | None:
    if parameter is None:
        return None
    if parameter.startswith("inputs.") or parameter.startswith("input_reference"):
        return "input_reference"
    return _PARAMS.get(parameter, parameter)


def error_response(status: int, message: str, param: str | None, code: str | None) -> JSONResponse:
    """`{"error": {"message", "type", "param", "code"}}` with `status`."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def domain_error(err: OpenImagineError) -> JSONResponse:
    """A domain error in OpenAI's envelope: OpenAI's parameter name, the code in snake case."""
    return error_response(err.http_status, err.message, _param(err.parameter), _snake(err.code))


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation error (of the body or a query parameter) as OpenAI's 400."""
    errors = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {}
    loc = [part for part in first.get("loc", ())[1:] if isinstance(part, str)]
    param = loc[0] if loc else None
    kind = str(first.get("type", ""))
    detail = str(first.get("msg", "invalid request"))
    if kind == "missing" and param is None:
        message = "Missing request body: send JSON or multipart/form-data."
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: '{'.'.join(loc)}'."
    elif param is not None:
        message = f"Invalid value for '{param}': {detail}."
    else:
        message = f"Invalid request body: {detail}."
    return error_response(400, message, param, _VALIDATION_CODES.get(kind, "invalid_value"))


# -- OpenAI request → Runware task, job → OpenAI Video ---------------------------------------


def _size(label: str, card: ModelCard) -> tuple[int, int, str]:
    width, _, height = label.partition("x")
    size = card.size(int(width), int(height)) if width.isdigit() and height.isdigit() else None
    if size is None:
        allowed = ", ".join(s.label for s in card.sizes)
        raise InvalidInput(
            f"Unsupported size {label!r}. Supported: {allowed}.",
            code="unsupportedDimensions",
            parameter="size",
        )
    return size.width, size.height, size.tier


def _seconds(value: str | int | None, card: ModelCard) -> int:
    if value is None:
        return DEFAULT_SECONDS
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) not in card.duration:
        raise InvalidInput(
            f"Unsupported seconds {value!r}: use a whole number of seconds from "
            f"{card.duration.min} to {card.duration.max}.",
            code="unsupportedDuration",
            parameter="seconds",
        )
    return int(text)


def _reference(ref: ImageReference) -> str:
    if (ref.image_url is None) == (ref.file_id is None):
        raise InvalidInput(
            "input_reference: give exactly one of image_url and file_id (or upload a file).",
            code="invalidInputReference",
            parameter="input_reference",
        )
    if ref.file_id is not None:
        try:
            return str(uuid.UUID(ref.file_id))
        except ValueError:
            raise InvalidInput(
                "input_reference.file_id: expected the UUID of an uploaded image.",
                code="invalidInputReference",
                parameter="input_reference",
            ) from None
    assert ref.image_url is not None  # noqa: S101 - exactly one is set
    if not ref.image_url.lower().startswith(("http://", "https://", "data:")):
        raise InvalidInput(
            "input_reference.image_url: expected an http(s) URL or a base64 data URL.",
            code="invalidInputReference",
            parameter="input_reference",
        )
    return ref.image_url


def runware_task(body: VideoCreateRequest, card: ModelCard, task_uuid: str) -> dict[str, Any]:
    """The Runware `videoInference` task an OpenAI create asks for."""
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": task_uuid,
        "model": card.id if body.model is None else body.model,  # validated by the card
        "positivePrompt": body.prompt,
        "duration": _seconds(body.seconds, card),
        "includeCost": True,  # so that getResponse on the same task shows its price
    }
    if body.input_reference is None:
        task["width"], task["height"], _tier = _size(body.size or DEFAULT_SIZE, card)
        return task
    task["inputs"] = {"frameImages": [_reference(body.input_reference)]}
    if body.size is not None:  # the tier; the aspect ratio follows the image
        task["resolution"] = _size(body.size, card)[2]
    return task


def _shape(request: VideoRequest) -> tuple[str, str]:
    """(size, seconds) of the output, as the request (resolved at submit) fixes them."""
    if request.width is not None and request.height is not None:
        size = f"{request.width}x{request.height}"
    else:
        size = request.resolution or ""
    if request.duration_s is not None:
        seconds = str(request.duration_s)
    elif request.num_frames is not None:
        seconds = str(round(request.num_frames / request.fps, 3))
    else:
        seconds = ""
    return size, seconds


def video_object(job: Job, results: list[Result]) -> Video:
    """A job as an OpenAI Video (its first result: OpenAI videos have one)."""
    request = VideoRequest.from_json(job.request)
    first = results[0] if results else None
    status = _STATUS[job.status]
    error = None
    if status == "failed":
        code = (first.error_code if first else None) or job.error_code or "inferenceError"
        message = (first.error_message if first else None) or job.error_message
        error = VideoError(code=_snake(code), message=message or "Generation failed.")
    size, seconds = _shape(request)
    return Video(
        id=job.task_uuid,
        status=status,
        progress=100 if status == "completed" else max(0, min(100, job.progress)),
        created_at=int(job.created_at),
        completed_at=int(job.finished_at) if job.finished_at and job.status.terminal else None,
        expires_at=int(first.expires_at) if first and first.expires_at else None,
        model=job.model,
        size=size,
        seconds=seconds,
        prompt=request.prompt,
        error=error,
    )

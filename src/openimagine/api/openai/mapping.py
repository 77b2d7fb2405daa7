"""OpenAI's fields straight to the domain's `VideoRequest`, and a `JobView` as a `Video`.

Every field is checked under its OpenAI name, so errors name `size`, `seconds`, `model` or
`input_reference` as the caller sent them.
"""

from __future__ import annotations

import uuid

from openimagine.api.openai.errors import snake
from openimagine.api.openai.schemas import (
    ImageReference,
    Video,
    VideoCreateRequest,
    VideoError,
    VideoStatus,
)
from openimagine.api.single import single_video
from openimagine.config import DeliverySettings
from openimagine.domain.jobs import JobStatus
from openimagine.domain.requests import MediaInput, VideoRequest
from openimagine.domain.views import JobView
from openimagine.errors import InvalidInput
from openimagine.models.card import ModelCard, Size
from openimagine.models.rules import check_model, check_prompt, check_size, check_url

DEFAULT_SIZE = "720x1280"  # OpenAI's default; one of the card's sizes
DEFAULT_SECONDS = 4  # OpenAI's default

_STATUS: dict[JobStatus, VideoStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}


def _size(label: str, card: ModelCard) -> Size:
    width, _, height = label.partition("x")
    if not (width.isdigit() and height.isdigit()):
        allowed = ", ".join(s.label for s in card.sizes)
        raise InvalidInput(
            f"Unsupported size {label!r}. Supported: {allowed}.",
            code="unsupportedDimensions",
            parameter="size",
        )
    return check_size(card, int(width), int(height), "size")


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


def _reference(ref: ImageReference) -> MediaInput:
    if (ref.image_url is None) == (ref.file_id is None):
        raise InvalidInput(
            "input_reference: give exactly one of image_url and file_id (or upload a file).",
            code="invalidInputReference",
            parameter="input_reference",
        )
    if ref.file_id is not None:
        try:
            return MediaInput(str(uuid.UUID(ref.file_id)), "input_reference")
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
    if not ref.image_url.lower().startswith("data:"):
        try:
            check_url("input_reference.image_url", ref.image_url)
        except InvalidInput as err:
            raise InvalidInput(
                err.message, code="invalidInputReference", parameter="input_reference"
            ) from None
    return MediaInput(ref.image_url, "input_reference")


def video_request(
    body: VideoCreateRequest, card: ModelCard, limits: DeliverySettings
) -> VideoRequest:
    """The request an OpenAI create asks for: one MP4 result, its cost kept (so that
    getResponse on the same task shows its price).

    Without `input_reference`, `size` is the output size; with one, it only picks the tier
    (480p or 720p, default 480p) and the aspect ratio follows the image.
    """
    model = check_model(card, card.id if body.model is None else body.model, "model")
    prompt = check_prompt(card, body.prompt, "prompt")
    seconds = _seconds(body.seconds, card)
    width = height = None
    frame_image = resolution = None
    if body.input_reference is None:
        size = _size(body.size or DEFAULT_SIZE, card)
        width, height = size.width, size.height
    else:
        frame_image = _reference(body.input_reference)
        resolution = _size(body.size, card).tier if body.size else card.default_resolution
    return single_video(
        card, limits, model, prompt, width=width, height=height, resolution=resolution,
        duration_s=seconds, frame_image=frame_image,
    )  # fmt: skip


def video_object(view: JobView) -> Video:
    """A job as an OpenAI Video (its first result: OpenAI videos have one)."""
    job, spec = view.job, view.job.spec
    first = view.results[0].result if view.results else None
    status = _STATUS[job.status]
    error = None
    if status == "failed":
        code = (first.error_code if first else None) or job.error_code or "inferenceError"
        message = (first.error_message if first else None) or job.error_message
        error = VideoError(code=snake(code), message=message or "Generation failed.")
    if spec.duration_s is not None:
        seconds = str(spec.duration_s)
    else:
        seconds = str(round(spec.num_frames / spec.fps, 3))
    return Video(
        id=job.task_uuid,
        status=status,
        progress=100 if status == "completed" else max(0, min(100, job.progress)),
        created_at=int(job.created_at),
        completed_at=int(job.finished_at) if job.finished_at and job.status.terminal else None,
        expires_at=int(first.expires_at) if first and first.expires_at else None,
        model=job.model,
        size=f"{spec.width}x{spec.height}",
        seconds=seconds,
        prompt=spec.prompt,
        error=error,
    )

"""xAI's video fields straight to the domain's `VideoRequest`, and a `JobView` as xAI's
deferred result. Shared by the REST routes and the gRPC service: each turns its own wire
shape into the plain dictionaries here, so both validate and answer alike.

Every field is checked under its xAI name, so errors name `aspect_ratio`, `duration`, `image`
or `video` as the caller sent them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from openimagine.api.openai.errors import snake
from openimagine.api.single import single_video
from openimagine.config import DeliverySettings
from openimagine.domain.jobs import JobStatus, ResultStatus
from openimagine.domain.requests import MediaInput, VideoRequest
from openimagine.domain.views import JobView
from openimagine.errors import InvalidInput
from openimagine.models.card import ModelCard, Size
from openimagine.models.rules import check_prompt, check_url

DOOR = "xai"  # the door a job was created through (`GenerationJob.door`)
MODEL_NAME = "grok-imagine-video"  # xAI's name of the model; the card's id is accepted too
DEFAULT_DURATION = 8  # xAI's default, in seconds
DEFAULT_ASPECT = "16:9"
TICKS_PER_USD = 10**10  # `usage.cost_in_usd_ticks`
_UNSUPPORTED = ("last_frame", "keyframes", "reference_audios", "storage_options")

Status = Literal["pending", "done", "failed", "expired"]


def _invalid(parameter: str, message: str, code: str = "invalidArgument") -> InvalidInput:
    return InvalidInput(f"{parameter}: {message}", code=code, parameter=parameter)


def check_xai_model(card: ModelCard, model: Any) -> str:
    """The card's id, when `model` names it (by xAI's name or the card's)."""
    if model is None or model in (MODEL_NAME, card.id):
        return card.id
    raise InvalidInput(
        f"Unknown model {model!r}: this server serves {MODEL_NAME!r} ({card.id}).",
        code="invalidModel",
        parameter="model",
    )


def _duration(value: Any, card: ModelCard) -> int:
    if value is None:
        return DEFAULT_DURATION
    if isinstance(value, bool) or not isinstance(value, int) or value not in card.duration:
        raise _invalid(
            "duration",
            f"expected whole seconds from {card.duration.min} to {card.duration.max}, "
            f"got {value!r}.",
            "unsupportedDuration",
        )
    return value


def _tier(value: Any, card: ModelCard) -> str:
    tiers = sorted({s.tier for s in card.sizes})
    if value is None:
        return card.default_resolution
    if value not in tiers:
        raise _invalid("resolution", f"expected one of {', '.join(tiers)}, got {value!r}.")
    return str(value)


def _size(aspect: Any, tier: str, card: ModelCard) -> Size:
    aspects = sorted({s.aspect for s in card.sizes})
    aspect = DEFAULT_ASPECT if aspect is None else aspect
    for size in card.sizes:
        if size.aspect == aspect and size.tier == tier:
            return size
    raise _invalid(
        "aspect_ratio",
        f"expected one of {', '.join(aspects)}, got {aspect!r}.",
        "unsupportedDimensions",
    )


def _media(value: Any, parameter: str, *, kinds: str) -> MediaInput:
    """`{"url": ...}` (http(s) or a data URL) or `{"file_id": ...}` (an uploaded file's or an
    earlier result's UUID)."""
    if not isinstance(value, dict):
        raise _invalid(parameter, f'expected {{"url": ...}} or {{"file_id": ...}} for {kinds}.')
    url, file_id = value.get("url"), value.get("file_id")
    if (url is None) == (file_id is None):
        raise _invalid(parameter, "give exactly one of url and file_id.")
    if file_id is not None:
        try:
            return MediaInput(str(uuid.UUID(str(file_id))), parameter)
        except ValueError:
            raise _invalid(parameter, "file_id: expected a file's UUID.") from None
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://", "data:")):
        raise _invalid(parameter, "url: expected an http(s) URL or a base64 data URL.")
    if not url.lower().startswith("data:"):
        check_url(parameter, url)
    return MediaInput(url, parameter)


def _common(body: dict[str, Any], card: ModelCard) -> tuple[str, str]:
    for name in _UNSUPPORTED:
        if body.get(name) not in (None, [], {}):
            raise _invalid(name, "not supported by this server.", "unsupportedParameter")
    if body.get("generate_audio") is False:
        raise _invalid(
            "generate_audio",
            "this model always makes the clip's audio track.",
            "unsupportedParameter",
        )
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput(
            "prompt: a text prompt is required.", code="missingPrompt", parameter="prompt"
        )
    return check_xai_model(card, body.get("model")), check_prompt(card, prompt, "prompt")


def generation_request(
    body: dict[str, Any], card: ModelCard, limits: DeliverySettings
) -> VideoRequest:
    """`POST /v1/videos/generations` (and gRPC `GenerateVideo` without a video): text to
    video at `aspect_ratio` × `resolution`, or from `image`, whose aspect then decides."""
    model, prompt = _common(body, card)
    duration = _duration(body.get("duration"), card)
    tier = _tier(body.get("resolution"), card)
    refs = body.get("reference_images") or []
    if not isinstance(refs, list):
        raise _invalid("reference_images", 'expected a list of {"url": ...}.')
    references = tuple(_media(r, "reference_images", kinds="an image") for r in refs)
    shape: dict[str, Any]
    if body.get("image") is not None:  # the image's aspect decides, at the asked tier
        shape = {
            "resolution": tier,
            "frame_image": _media(body["image"], "image", kinds="an image"),
        }
    else:
        size = _size(body.get("aspect_ratio"), tier, card)
        shape = {"width": size.width, "height": size.height}
    return single_video(
        card, limits, model, prompt, duration_s=duration, reference_images=references, **shape
    )


def _source(body: dict[str, Any], refused: tuple[str, ...], verb: str, kept: str) -> MediaInput:
    """The `video` an edit or an extension works on; the fields that would change what the
    output keeps of it are refused by name."""
    for name in refused:
        if body.get(name) is not None:
            raise _invalid(name, f"the output keeps the input video's {kept}.")
    if body.get("video") is None:
        raise InvalidInput(
            f"video: the video to {verb} is required.", code="missingVideo", parameter="video"
        )
    return _media(body["video"], "video", kinds="a video")


def edit_request(body: dict[str, Any], card: ModelCard, limits: DeliverySettings) -> VideoRequest:
    """`POST /v1/videos/edits` (and gRPC `GenerateVideo` with a video): the video restyled by
    the prompt, at its own size and length."""
    model, prompt = _common(body, card)
    refused = ("duration", "aspect_ratio", "resolution", "image")
    video = _source(body, refused, "edit", "size and length")
    return single_video(card, limits, model, prompt, video=video)


def extension_request(
    body: dict[str, Any], card: ModelCard, limits: DeliverySettings
) -> VideoRequest:
    """`POST /v1/videos/extensions` (and gRPC `ExtendVideo`): `video` followed by `duration`
    more seconds (2-10, default 6) that continue it, its audio included, at its size."""
    model, prompt = _common(body, card)
    if card.extension is None:
        raise _invalid("video", "this model does not extend videos.", "unsupportedParameter")
    video = _source(body, ("aspect_ratio", "resolution", "image"), "extend", "size")
    added = body.get("duration")
    rng = card.extension
    if added is None:
        added = rng.default if rng.default is not None else rng.min
    if isinstance(added, bool) or not isinstance(added, int) or added not in rng:
        raise _invalid(
            "duration",
            f"expected whole seconds to add, from {rng.min} to {rng.max}, got {added!r}.",
            "unsupportedDuration",
        )
    return single_video(card, limits, model, prompt, video=video, duration_s=added, extend=True)


@dataclass(frozen=True, slots=True)
class Deferred:
    """A job as xAI's deferred result."""

    status: Status
    progress: int
    model: str
    url: str | None = None
    duration: float | None = None
    respect_moderation: bool = True
    cost_in_usd_ticks: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def ticks(cost_usd: float) -> int:
    """A price in xAI's units (exact for the card's cent prices)."""
    return int(Decimal(str(cost_usd)) * TICKS_PER_USD)


def deferred(view: JobView, model_name: str = MODEL_NAME) -> Deferred:
    """The job's state as `GET /v1/videos/{request_id}` and `GetDeferredVideo` report it."""
    job, spec = view.job, view.job.spec
    first = view.results[0] if view.results else None
    result = first.result if first else None
    if not job.status.terminal:
        progress = max(0, min(99, job.progress))
        return Deferred("pending", progress, model_name)
    if job.status is JobStatus.SUCCEEDED and result is not None:
        if result.status is ResultStatus.SUCCESS and first is not None and first.url:
            if result.expires_at is not None and result.expires_at <= time.time():
                return Deferred("expired", 100, model_name)
            seconds = float(spec.seconds)
            return Deferred(
                "done",
                100,
                model_name,
                url=first.url,
                duration=int(seconds) if seconds.is_integer() else seconds,
                respect_moderation=result.nsfw is not True,
                cost_in_usd_ticks=ticks(result.cost or 0.0),
            )
        if result.status is ResultStatus.SUCCESS:  # its file is gone
            return Deferred("expired", 100, model_name)
    code = (result.error_code if result else None) or job.error_code or "inferenceError"
    message = (result.error_message if result else None) or job.error_message
    status_code = "cancelled" if job.status is JobStatus.CANCELED else snake(code)
    return Deferred(
        "failed", 100, model_name, error_code=status_code,
        error_message=message or "Generation failed.",
    )  # fmt: skip


def deferred_json(d: Deferred) -> dict[str, Any]:
    """The REST body of a deferred result."""
    if d.status == "pending":
        return {"status": "pending", "progress": d.progress}
    if d.status == "expired":
        return {"status": "expired", "model": d.model}
    if d.status == "failed":
        return {
            "status": "failed",
            "model": d.model,
            "error": {"code": d.error_code, "message": d.error_message},
            "progress": d.progress,
        }
    return {
        "status": "done",
        "video": {
            "url": d.url,
            "duration": d.duration,
            "respect_moderation": d.respect_moderation,
        },
        "model": d.model,
        "usage": {"cost_in_usd_ticks": d.cost_in_usd_ticks},
        "progress": 100,
    }

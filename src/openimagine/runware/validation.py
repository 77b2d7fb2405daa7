"""Validate a Runware `videoInference` task against a model card, into a `VideoRequest`.

Every rule of the model page is one check here (or in `models.rules`, shared with the other
doors), and each failure is an `InvalidInput` that names the Runware parameter. Nothing is
stored before this passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openimagine.config import DeliverySettings
from openimagine.domain.requests import MediaInput, SafetyMode, VideoRequest
from openimagine.errors import InvalidInput
from openimagine.media.sources import SourceKind, classify
from openimagine.models.card import ModelCard
from openimagine.models.rules import (
    check_model,
    check_prompt,
    check_size,
    check_text,
    check_url,
    invalid,
    missing,
)
from openimagine.runware.fields import (
    get_bool,
    get_choice,
    get_int,
    get_list,
    get_object,
    get_str,
    reject_unknown,
)

SEED_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class _Inputs:
    frame_image: MediaInput | None
    reference_images: tuple[MediaInput, ...]
    video: MediaInput | None
    extend: bool = False  #: `video` came as `inputs.extendVideo`: it is continued


def _media(value: Any, parameter: str, field: str | None = None) -> MediaInput:
    """A media string; `field` is the name later errors about the media use (the field,
    where `parameter` may be a part of it)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(
            parameter,
            f"Invalid value for {parameter}: expected a UUID, URL, data URI or base64 string.",
        )
    value = check_text(parameter, value.strip())
    if classify(value).kind is SourceKind.URL:
        check_url(parameter, value)  # refused now, not when the fetch fails at submit
    return MediaInput(value, field or parameter)


def _frame_image(items: list[Any], card: ModelCard) -> MediaInput | None:
    if not items:
        return None
    if len(items) > 1:
        raise invalid(
            "inputs.frameImages",
            "Invalid value for inputs.frameImages: this model "
            "accepts one frame image (the first frame).",
            max=1,
        )
    item = items[0]
    if isinstance(item, dict):
        reject_unknown(item, frozenset({"image", "frame", "inputImage"}), "inputs.frameImages.")
        image = item.get("image", item.get("inputImage"))
        if image is None:
            raise missing("inputs.frameImages.image")
        frame = item.get("frame", "first")
        if isinstance(frame, bool) or frame not in card.frame_positions:
            raise invalid(
                "inputs.frameImages.frame",
                f"Invalid value for "
                f"inputs.frameImages.frame: {frame!r}. This model only supports the "
                "first frame.",
                allowedValues=list(card.frame_positions),
            )
        return _media(image, "inputs.frameImages.image", "inputs.frameImages")
    return _media(item, "inputs.frameImages")


def _inputs(task: Mapping[str, Any], card: ModelCard) -> _Inputs:
    inputs = get_object(task, "inputs")
    reject_unknown(inputs, card.input_fields, "inputs.")
    frames = get_list(inputs, "frameImages", "inputs.frameImages") or []
    refs = get_list(inputs, "referenceImages", "inputs.referenceImages") or []
    video = inputs.get("video")
    ref_videos = get_list(inputs, "referenceVideos", "inputs.referenceVideos") or []
    to_extend = inputs.get("extendVideo")
    if to_extend is not None and (video is not None or ref_videos):
        raise invalid(
            "inputs.extendVideo",
            "inputs.extendVideo continues a video; it cannot be used with inputs.video or "
            "inputs.referenceVideos.",
        )
    if video is not None and ref_videos:
        raise invalid(
            "inputs.referenceVideos",
            "Use either inputs.video or inputs.referenceVideos for the source video, not both.",
        )
    if len(ref_videos) > 1:
        raise invalid(
            "inputs.referenceVideos",
            "This model transforms one source video: inputs.referenceVideos takes one item.",
            max=1,
        )
    source = None
    references = tuple(_media(r, f"inputs.referenceImages[{i}]") for i, r in enumerate(refs))
    if to_extend is not None:
        source = _media(to_extend, "inputs.extendVideo")
        return _Inputs(_frame_image(frames, card), references, source, extend=True)
    if ref_videos:
        source = _media(ref_videos[0], "inputs.referenceVideos", "inputs.video")
    elif video is not None:
        source = _media(video, "inputs.video")
    return _Inputs(_frame_image(frames, card), references, source)


def _check_input_rules(task: Mapping[str, Any], ins: _Inputs) -> None:
    _check_media_combination(ins)
    _check_size_choice(task, ins)


def _check_media_combination(ins: _Inputs) -> None:
    """At most one kind of media input, except references with a text prompt."""
    if ins.frame_image is not None and ins.reference_images:
        raise InvalidInput(
            "frameImages cannot be used with referenceImages (in inputs).",
            code="incompatibleParameters",
            parameter="inputs.referenceImages",
        )
    source = "inputs.extendVideo" if ins.extend else "inputs.video"
    if ins.frame_image is not None and ins.video is not None:
        raise InvalidInput(
            f"frameImages cannot be used with {source.removeprefix('inputs.')} (in inputs).",
            code="incompatibleParameters",
            parameter=source,
        )
    if ins.video is not None and ins.reference_images:
        raise InvalidInput(
            f"referenceImages guide text-to-video only; they cannot be used with {source}.",
            code="incompatibleParameters",
            parameter="inputs.referenceImages",
        )


def _check_size_choice(task: Mapping[str, Any], ins: _Inputs) -> None:
    """The size comes from exactly one of: width/height, a frame image (with an optional
    resolution preset), or a source video."""
    # JSON null means "not given" everywhere, as the readers of each field treat it.
    has_wh = task.get("width") is not None or task.get("height") is not None
    has_resolution = task.get("resolution") is not None
    if ins.video is not None and (has_wh or has_resolution):
        param = "resolution" if has_resolution else "width"
        source = "inputs.extendVideo" if ins.extend else "inputs.video"
        raise InvalidInput(
            f"When {source} is provided, width/height and resolution cannot be used.",
            code="incompatibleParameters",
            parameter=param,
        )
    if has_resolution and has_wh:
        raise InvalidInput(
            "resolution cannot be used with width/height.",
            code="incompatibleParameters",
            parameter="resolution",
        )
    if has_resolution and ins.frame_image is None:
        raise InvalidInput(
            "When resolution is provided, inputs.frameImages requires at least 1 item.",
            code="missingFrameImages",
            parameter="inputs.frameImages",
        )
    if ins.frame_image is not None and has_wh:
        raise InvalidInput(
            "Provide exactly one of: inputs.frameImages or inputs.video or width/height.",
            code="incompatibleParameters",
            parameter="width",
        )
    if ins.frame_image is None and ins.video is None and not has_wh:
        raise InvalidInput(
            "Provide exactly one of: inputs.frameImages or inputs.video or width/height.",
            code="missingWidth",
            parameter="width",
        )


def _size(task: Mapping[str, Any], card: ModelCard) -> tuple[int | None, int | None]:
    width = get_int(task, "width")
    height = get_int(task, "height")
    if width is None and height is None:
        return None, None
    if width is None:
        raise missing("width", "width and height must be used together.")
    if height is None:
        raise missing("height", "width and height must be used together.")
    check_size(card, width, height, "width")
    return width, height


def _duration(task: Mapping[str, Any], card: ModelCard, ins: _Inputs) -> int | None:
    if ins.extend and card.extension is not None:
        added = card.extension
        value = task.get("duration")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value not in added
        ):
            raise InvalidInput(
                f"When inputs.extendVideo is provided, duration (the seconds added) must be "
                f"a whole number from {added.min} to {added.max}.",
                code="unsupportedDuration",
                parameter="duration",
                min=added.min,
                max=added.max,
            )
        return added.default if value is None else int(value)
    if ins.video is not None:
        rng = card.video_duration
        value = task.get("duration")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not rng.min <= value <= rng.max
        ):
            raise InvalidInput(
                f"When inputs.video and duration are provided, duration must be between "
                f"{rng.min} and {rng.max}.",
                code="unsupportedDuration",
                parameter="duration",
                min=rng.min,
                max=rng.max,
            )
        return get_int(task, "duration", lo=rng.min, hi=rng.max)
    d = get_int(task, "duration", lo=card.duration.min, hi=card.duration.max)
    return card.duration.default if d is None else d


def _prompt(task: Mapping[str, Any], card: ModelCard) -> str:
    prompt = get_str(task, "positivePrompt", required=True)
    assert prompt is not None  # noqa: S101 - required=True guarantees it
    return check_prompt(card, prompt, "positivePrompt")


def _safety_mode(task: Mapping[str, Any], card: ModelCard) -> SafetyMode:
    safety = get_object(task, "safety")
    reject_unknown(safety, frozenset({"checkContent", "mode"}), "safety.")
    check = get_bool(safety, "checkContent", "safety.checkContent")
    mode = get_choice(safety, "mode", card.safety_modes, "safety.mode")
    if mode is not None:  # the page: mode wins over checkContent
        return SafetyMode(mode)
    return SafetyMode.FAST if check else SafetyMode.NONE


def _ttl(task: Mapping[str, Any], card: ModelCard, limits: DeliverySettings) -> int:
    ttl = get_int(task, "ttl", lo=card.min_ttl_s, hi=limits.max_ttl_s)
    return limits.default_ttl_s if ttl is None else ttl


def _url(task: Mapping[str, Any], key: str) -> str | None:
    value = get_str(task, key)
    return None if value is None else check_url(key, value)


def _legacy_inputs(task: Mapping[str, Any]) -> dict[str, Any]:
    """compat: the legacy `runware` SDK can send top-level frameImages/referenceImages
    ({inputImage, frame}); fold them into `inputs` so both layouts validate the same way."""
    if "frameImages" not in task and "referenceImages" not in task:
        return dict(task)
    out = dict(task)
    inputs = dict(get_object(out, "inputs"))
    for key in ("frameImages", "referenceImages"):
        if key in out:
            if key in inputs:
                raise invalid(key, f"{key} is given both at the top level and in inputs.")
            inputs[key] = out.pop(key)
    out["inputs"] = inputs
    return out


def validate_video_task(
    raw: Mapping[str, Any], card: ModelCard, limits: DeliverySettings
) -> VideoRequest:
    """Check a `videoInference` task against `card`; return the normalized request.

    `limits` bounds what the page leaves open: the default and longest `ttl`.
    """
    task = _legacy_inputs(raw)
    reject_unknown(task, card.task_fields)
    model = check_model(card, get_str(task, "model", required=True), "model")
    prompt = _prompt(task, card)
    ins = _inputs(task, card)
    _check_input_rules(task, ins)
    width, height = _size(task, card)
    resolution = get_choice(task, "resolution", card.resolutions)
    if ins.frame_image is not None and resolution is None:
        resolution = card.default_resolution
    get_choice(task, "outputType", card.output_types)
    get_choice(task, "deliveryMethod", card.delivery_methods)
    return VideoRequest(
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        resolution=resolution,
        duration_s=_duration(task, card, ins),
        output_format=get_choice(task, "outputFormat", card.output_formats)
        or card.default_output_format,
        output_quality=_quality(task, card),
        ttl_s=_ttl(task, card, limits),
        number_results=_number_results(task, card),
        include_cost=bool(get_bool(task, "includeCost")),
        safety_mode=_safety_mode(task, card),
        webhook_url=_url(task, "webhookURL"),
        upload_endpoint=_url(task, "uploadEndpoint"),
        seed=get_int(task, "seed", lo=1, hi=SEED_MAX),
        frame_image=ins.frame_image,
        reference_images=ins.reference_images,
        video=ins.video,
        extend=ins.extend,
    )


def _quality(task: Mapping[str, Any], card: ModelCard) -> int:
    rng = card.output_quality
    q = get_int(task, "outputQuality", lo=rng.min, hi=rng.max)
    return rng.default if q is None else q  # type: ignore[return-value]


def _number_results(task: Mapping[str, Any], card: ModelCard) -> int:
    rng = card.number_results
    n = get_int(task, "numberResults", lo=rng.min, hi=rng.max)
    return rng.default if n is None else n  # type: ignore[return-value]

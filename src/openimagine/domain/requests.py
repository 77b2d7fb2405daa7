"""A validated video request, as any door hands it to the service."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass


class Mode(enum.StrEnum):
    """Which capability of the model a request uses."""

    T2V = "t2v"  #: text to video
    I2V = "i2v"  #: the first frame is an image
    V2V = "v2v"  #: a source video is transformed
    EXTEND = "extend"  #: a source video is continued, its audio with it


class SafetyMode(enum.StrEnum):
    """Which frames of a result the content check looks at."""

    NONE = "none"
    FAST = "fast"  #: key frames
    FULL = "full"  #: every frame


@dataclass(frozen=True, slots=True)
class MediaInput:
    """An input image or video as the caller named it (a UUID, URL, data URI or base64),
    and the caller's name for the field, so that errors about it name what was sent."""

    source: str
    parameter: str


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """A request checked against the model card, before its inputs are resolved.

    `width`/`height` are None when the size follows an input: image-to-video picks the size
    of tier `resolution` nearest the image's aspect, video-to-video the source's.
    `duration_s` is None only for video-to-video without `duration` (the output then has
    the source's length).
    """

    model: str
    prompt: str
    width: int | None
    height: int | None
    resolution: str | None
    duration_s: int | None
    output_format: str
    output_quality: int
    ttl_s: int
    number_results: int
    include_cost: bool
    safety_mode: SafetyMode
    webhook_url: str | None = None
    upload_endpoint: str | None = None
    seed: int | None = None
    frame_image: MediaInput | None = None
    reference_images: tuple[MediaInput, ...] = ()
    video: MediaInput | None = None
    #: `video` is continued by `duration_s` seconds rather than transformed
    extend: bool = False

    @property
    def mode(self) -> Mode:
        """Text-, image- or video-to-video, or an extension, from the inputs."""
        if self.video is not None:
            return Mode.EXTEND if self.extend else Mode.V2V
        return Mode.I2V if self.frame_image is not None else Mode.T2V

    @property
    def has_inputs(self) -> bool:
        """Whether any media must be fetched or decoded before the job can be queued."""
        return bool(self.frame_image or self.reference_images or self.video)

    def fingerprint(self) -> str:
        """SHA-256 of the request as sent: the same taskUUID with another fingerprint is a
        different request (idempotency is judged before inputs are resolved)."""
        # perf: by field name, not `asdict` (which deep-copies; a submit is hot).
        fields = [getattr(self, name) for name in _REQUEST_FIELDS]
        if self.extend:  # only then: the fingerprints of every other request stay as they were
            fields.append("extend")
        canonical = json.dumps(fields, separators=(",", ":"), default=_media_json)
        return hashlib.sha256(canonical.encode()).hexdigest()


_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(VideoRequest) if f.name != "extend")


def _media_json(value: object) -> object:
    if isinstance(value, MediaInput):
        return [value.source, value.parameter]
    raise TypeError(f"{type(value).__name__} is not part of a request")

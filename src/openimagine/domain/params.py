"""Backend-neutral requests: what a validated task asks for, and what one generation needs."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any


class Mode(enum.StrEnum):
    """Which capability of the model a request uses."""

    T2V = "t2v"
    I2V = "i2v"
    V2V = "v2v"


_BLOB = "blob:"


def blob_ref(key: str) -> str:
    """How a resolved request names an input stored in the blob store."""
    return _BLOB + key


def blob_key(ref: str) -> str | None:
    """The blob key a `blob_ref` names, or None for anything else."""
    return ref.removeprefix(_BLOB) if ref.startswith(_BLOB) else None


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """A validated `videoInference` task, normalized; stored as JSON on the job.

    `width`/`height` are None only while they still depend on input media (I2V with a
    `resolution` preset, V2V); `duration_s` is None for V2V without `duration` (the output
    then has the input's length).
    """

    model: str
    prompt: str
    mode: Mode
    width: int | None
    height: int | None
    resolution: str | None
    duration_s: int | None
    fps: int
    output_format: str
    output_quality: int
    ttl_s: int
    number_results: int
    include_cost: bool
    safety_mode: str
    webhook_url: str | None
    upload_endpoint: str | None
    seed: int | None
    frame_image: str | None = None
    reference_images: tuple[str, ...] = field(default_factory=tuple)
    video: str | None = None
    # Filled at submit from the input video (V2V): the exact output frame count, and the
    # input's exact length as a fraction string ("101/15"), which its price depends on.
    num_frames: int | None = None
    source_seconds: str | None = None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), also the basis of the idempotency hash."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> VideoRequest:
        """Inverse of `to_json`."""
        data: dict[str, Any] = json.loads(raw)
        data["mode"] = Mode(data["mode"])
        data["reference_images"] = tuple(data.get("reference_images") or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Everything a backend needs for one clip, already fitted to the model's grid rules
    by the caller: the backend returns at least `num_frames` frames of at least
    `width`×`height`, and the worker fits them exactly."""

    prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    seed: int
    steps: int | None = None
    guidance_scale: float | None = None

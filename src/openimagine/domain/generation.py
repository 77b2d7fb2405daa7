"""What one job generates, resolved at submit, and what one backend call needs."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from openimagine.domain.requests import Mode, SafetyMode


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """A request with everything that depends on its inputs settled; stored on the job.

    Inputs are blob keys of stored files; `width`×`height` is an exact card size and
    `num_frames` the exact output length at `fps`. Workers read only this.
    """

    model: str
    prompt: str
    mode: Mode
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: int | None  #: as asked; None: the source video's length (video-to-video)
    source_seconds: Fraction | None  #: exact length of the input video, which it is priced by
    output_format: str
    output_quality: int
    ttl_s: int
    number_results: int
    include_cost: bool
    safety_mode: SafetyMode
    webhook_url: str | None = None
    upload_endpoint: str | None = None
    frame_image: str | None = None
    reference_images: tuple[str, ...] = ()
    video: str | None = None
    door: str = "runware"  #: the API it was created through, whose shape its reads answer in

    @property
    def seconds(self) -> Fraction:
        """Exact output length."""
        return Fraction(self.num_frames, self.fps)

    @property
    def pixel_frames(self) -> int:
        """Its size as a worker's device sees it: width × height × frames."""
        return self.width * self.height * self.num_frames


@dataclass(frozen=True, slots=True)
class Grid:
    """The size and frame count a backend generates for a request (≥ the request); the
    worker fits the output to the exact size and length afterwards."""

    width: int
    height: int
    num_frames: int


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """One backend call: a prompt on a grid the backend chose (`VideoBackend.grid`)."""

    prompt: str
    grid: Grid
    fps: int
    seed: int
    steps: int | None = None  #: None: the backend's configured steps

"""The `VideoBackend` protocol: what a worker needs from a model. Backends are found by name
through the `openimagine.backends` entry-point group (`registry`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from openimagine.domain.generation import GenerationParams, Grid

StepCallback = Callable[[int, int], None]
StopCheck = Callable[[], bool]


class Canceled(Exception):
    """Raised out of `generate` when `should_stop` turned true mid-run."""


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What the backend serves, as every surface that shows the model reports it."""

    name: str
    weights: str
    random_weights: bool
    audio_sample_rate: int
    default_steps: int

    @property
    def notice(self) -> str | None:
        """A warning to show wherever the model is shown, when its output is noise."""
        if not self.random_weights:
            return None
        return (
            "RANDOM WEIGHTS: the offline tiny LTX-2 model has random weights, so its video and "
            "audio are noise. Point OPENIMAGINE_MODEL__CHECKPOINT at a real LTX-2 checkpoint."
        )


@dataclass(frozen=True, slots=True)
class Clip:
    """A generated clip before fitting: frames [F, H, W, 3] (float 0-1 or uint8) and audio
    [C, N] float at `sample_rate`."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Continuation:
    """The end of a clip being extended: its last frames, fitted to the grid, as uint8
    `[F, H, W, 3]`, and the audio of the same span, `[C, N]` float at `sample_rate`. The clip
    generated from it opens on these frames (and this audio), then goes on."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Conditioning:
    """What a clip is conditioned on besides its prompt, already fitted to the backend's
    grid (see `VideoBackend.grid`): uint8 RGB `[H, W, 3]` images, `[F, H, W, 3]` video."""

    first_frame: np.ndarray | None = None  # image-to-video: the clip opens on this image
    references: tuple[np.ndarray, ...] = ()  # guide the whole clip, at no fixed frame
    video: np.ndarray | None = None  # video-to-video: the source, one frame per output frame
    continuation: Continuation | None = None  # an extension: the clip goes on from this

    @property
    def empty(self) -> bool:
        """True for plain text-to-video."""
        return (
            self.first_frame is None
            and not self.references
            and self.video is None
            and self.continuation is None
        )


class VideoBackend(Protocol):
    """A text/image/video-to-video-with-audio model, loaded once per worker process."""

    def load(self, device: str) -> BackendInfo:
        """Load weights onto `device`; called once before any `generate`."""
        ...

    def grid(self, width: int, height: int, num_frames: int) -> Grid:
        """The generation grid covering a requested size and length."""
        ...

    def generate(
        self,
        params: GenerationParams,
        on_step: StepCallback,
        should_stop: StopCheck,
        conditioning: Conditioning | None = None,
    ) -> Clip:
        """Generate one clip on `params.grid` (from `grid`); raise `Canceled` if asked to
        stop. Conditioning images and video are already fitted to that grid."""
        ...

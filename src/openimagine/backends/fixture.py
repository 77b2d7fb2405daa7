"""The `fixture` backend: a test pattern and a tone, no model and no torch.

For tests, benchmarks and fleet load tests, where what is measured is everything around the
model (queue, leases, encode, delivery). Each clip is a diagonal colour gradient that scrolls
one pixel a frame, its colours derived from the seed and the prompt (same request, same
bytes), with a stereo sine tone whose pitch is derived the same way. It generates on exactly
the requested grid, reports a few fake steps, honours cancel between them, and can take a
fixed time per clip (`OPENIMAGINE_MODEL__FIXTURE_SECONDS`) to stand in for a model's.

Select it with `OPENIMAGINE_MODEL__BACKEND=fixture`. Its workers say it is a test pattern, so
nobody mistakes it for a model: weights `fixture: test pattern (no model)`, `random_weights`
(every "not a trained model" path applies: /health, the file's comment), and a notice of its
own (`FixtureInfo`) in the worker's log.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from openimagine.backends.base import (
    BackendInfo,
    Canceled,
    Clip,
    Conditioning,
    StepCallback,
    StopCheck,
)
from openimagine.config import Settings
from openimagine.domain.generation import GenerationParams, Grid

NAME = "fixture"
WEIGHTS = "fixture: test pattern (no model)"
SAMPLE_RATE = 48_000
DEFAULT_STEPS = 4


@dataclass(frozen=True, slots=True)
class FixtureInfo(BackendInfo):
    """`BackendInfo` whose notice names the fixture instead of random weights."""

    @property
    def notice(self) -> str | None:
        """Shown wherever the model is shown: the output is a test pattern."""
        return (
            "FIXTURE BACKEND: test pattern, no model. Clips are a colour gradient and a tone; "
            "unset OPENIMAGINE_MODEL__BACKEND to serve LTX-2."
        )


class FixtureBackend:
    """Deterministic test-pattern clips at the requested size and length.

    Args:
        seconds: wall time each clip takes (a sleep spread over the steps), 0 for none.
        steps: fake steps reported through `on_step` (`GenerationParams.steps` overrides).
    """

    def __init__(self, seconds: float = 0.0, steps: int = DEFAULT_STEPS) -> None:
        if seconds < 0 or steps < 1:
            raise ValueError(f"need seconds >= 0 and steps >= 1, got {seconds}, {steps}")
        self.seconds = seconds
        self.steps = steps

    def load(self, device: str) -> BackendInfo:
        """Nothing to load: the pattern is computed per clip."""
        return FixtureInfo(
            name=NAME,
            weights=WEIGHTS,
            random_weights=True,  # not trained weights: every "no real model" path applies
            audio_sample_rate=SAMPLE_RATE,
            default_steps=self.steps,
        )

    def grid(self, width: int, height: int, num_frames: int) -> Grid:
        """Exactly the request: fitting it afterwards is a no-op."""
        return Grid(width=width, height=height, num_frames=num_frames)

    def generate(
        self,
        params: GenerationParams,
        on_step: StepCallback,
        should_stop: StopCheck,
        conditioning: Conditioning | None = None,
    ) -> Clip:
        """The pattern and tone of `params` after `steps` fake steps; conditioning is
        ignored (the fixture stands in for a model's time, not its output)."""
        steps = params.steps or self.steps
        for step in range(1, steps + 1):
            if should_stop():
                raise Canceled
            if self.seconds:
                time.sleep(self.seconds / steps)
            on_step(step, steps)
        if should_stop():
            raise Canceled
        digest = hashlib.sha256(f"{params.seed}\0{params.prompt}".encode()).digest()
        return Clip(
            frames=pattern(params.grid, digest),
            audio=tone(params.grid.num_frames, params.fps, digest),
            sample_rate=SAMPLE_RATE,
        )


def pattern(grid: Grid, digest: bytes) -> np.ndarray:
    """Read-only uint8 frames `[F, H, W, 3]`: a gradient scrolling one pixel a frame.

    perf: every frame is a window onto one strip `W + F` pixels wide, so a 15 s 1280x720
    clip takes 4 MB rather than 1 GB.
    """
    width, height, frames = grid.width, grid.height, grid.num_frames
    x = np.arange(width + frames, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    base = np.frombuffer(digest[:6], dtype=np.uint8).astype(np.uint32)
    strip = np.empty((height, width + frames, 3), dtype=np.uint8)
    for c in range(3):
        # Each channel its own offset and slopes (1-4 levels a pixel), from the digest.
        slope_x, slope_y = base[3 + c] % 4 + 1, (base[3 + c] >> 2) % 4
        strip[..., c] = (base[c] + slope_x * x + slope_y * y) % 256
    sy, sx, sc = strip.strides
    view = as_strided(strip, (frames, height, width, 3), (sx, sy, sx, sc), writeable=False)
    return np.asarray(view)


def tone(num_frames: int, fps: int, digest: bytes) -> np.ndarray:
    """Stereo float32 `[2, N]`: a sine (220-850 Hz, from the digest) spanning the frames."""
    samples = -(-num_frames * SAMPLE_RATE // fps)  # ceil: never shorter than the video
    hz = 220.0 + 10.0 * (digest[6] % 64)
    t = np.arange(samples, dtype=np.float64) / SAMPLE_RATE
    left = 0.25 * np.sin(2 * np.pi * hz * t)
    right = 0.25 * np.sin(2 * np.pi * hz * 1.5 * t)  # a fifth above: the channels differ
    return np.stack([left, right]).astype(np.float32)


def from_settings(settings: Settings) -> FixtureBackend:
    """The `fixture` entry point."""
    return FixtureBackend(
        seconds=settings.model.fixture_seconds, steps=settings.model.steps or DEFAULT_STEPS
    )

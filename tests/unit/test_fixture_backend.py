"""The `fixture` backend: exact grid, deterministic pattern and tone, steps, cancel, its label."""

from __future__ import annotations

import time

import numpy as np
import pytest

from openimagine.backends.base import Canceled
from openimagine.backends.fixture import FixtureBackend, from_settings
from openimagine.config import ModelSettings, Settings
from openimagine.domain.generation import GenerationParams


def params(seed: int = 1, prompt: str = "a lighthouse", frames: int = 24) -> GenerationParams:
    return GenerationParams(prompt, FixtureBackend().grid(480, 848, frames), fps=24, seed=seed)


def test_clip_is_the_exact_grid_in_uint8_with_a_stereo_tone():
    steps: list[tuple[int, int]] = []
    clip = FixtureBackend().generate(params(), lambda i, n: steps.append((i, n)), lambda: False)
    assert clip.frames.shape == (24, 848, 480, 3) and clip.frames.dtype == np.uint8
    assert not clip.frames.flags.writeable
    assert not np.array_equal(clip.frames[0], clip.frames[1])  # it moves
    assert clip.audio.shape == (2, 48_000) and clip.audio.dtype == np.float32
    assert 0.2 < float(np.abs(clip.audio).max()) <= 0.25
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_same_request_same_clip_other_seed_or_prompt_other_clip():
    def frame0(**kw: object) -> np.ndarray:
        return FixtureBackend().generate(params(**kw), lambda i, n: None, lambda: False).frames[0]  # type: ignore[arg-type]

    assert np.array_equal(frame0(seed=5), frame0(seed=5))
    assert not np.array_equal(frame0(seed=5), frame0(seed=6))
    assert not np.array_equal(frame0(prompt="a"), frame0(prompt="b"))


def test_cancel_stops_between_steps():
    seen: list[int] = []
    with pytest.raises(Canceled):
        FixtureBackend(steps=6).generate(
            params(), lambda i, n: seen.append(i), lambda: len(seen) >= 2
        )
    assert seen == [1, 2]


def test_fixture_seconds_is_the_time_a_clip_takes():
    t0 = time.perf_counter()
    FixtureBackend(seconds=0.2).generate(params(), lambda i, n: None, lambda: False)
    assert 0.2 <= time.perf_counter() - t0 < 1.0


def test_it_says_it_is_a_fixture_and_reads_its_settings():
    backend = from_settings(Settings(model=ModelSettings(fixture_seconds=0.5, steps=2)))
    assert (backend.seconds, backend.steps) == (0.5, 2)
    info = backend.load("cpu")
    assert info.name == "fixture" and info.random_weights
    assert "test pattern" in info.weights and info.notice is not None
    assert "FIXTURE BACKEND" in info.notice

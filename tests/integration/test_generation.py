"""The real diffusers LTX-2 pipeline (tiny random weights) through fit and encode: every
supported size and the whole duration range give exactly the file the request names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from openimagine.backends.ltx2 import LTX2Backend
from openimagine.domain.generation import GenerationParams
from openimagine.media.fit import frames_needed
from openimagine.media.probe import probe
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.worker.render import Target, render_clip

SLOW = os.environ.get("RUN_SLOW") == "1"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> LTX2Backend:
    os.environ["HF_HUB_OFFLINE"] = "1"
    b = LTX2Backend(None, tmp_path_factory.mktemp("models"), torch_threads=2)
    info = b.load("cpu")
    assert info.random_weights and info.audio_sample_rate == 48000
    return b


def make_clip(
    backend: LTX2Backend,
    path: Path,
    width: int,
    height: int,
    seconds: int,
    seed: int = 1,
    fmt: str = "MP4",
) -> Path:
    n = frames_needed(seconds, 24)
    grid = backend.grid(width, height, n)
    params = GenerationParams("a robot dancing in the rain", grid, fps=24, seed=seed)
    steps: list[int] = []
    clip = backend.generate(params, lambda i, total: steps.append(i), lambda: False)
    assert steps == list(range(1, 9))  # progress per denoising step
    assert clip.frames.shape[:3] == (grid.num_frames, grid.height, grid.width)
    target = Target(
        width=width,
        height=height,
        num_frames=n,
        fps=24,
        fmt=fmt,
        quality=80,
        threads=2,
        comment="test",
    )
    render_clip(clip, target, path)
    return path


@pytest.mark.parametrize("size", GROK_IMAGINE_VIDEO.sizes, ids=lambda s: s.label)
def test_every_supported_size_is_exact(backend: LTX2Backend, tmp_path: Path, size):
    info = probe(make_clip(backend, tmp_path / "c.mp4", size.width, size.height, 1))
    assert (info.width, info.height) == (size.width, size.height)
    assert info.frame_count == 24 and info.fps == 24
    assert info.audio_channels == 2 and info.audio_sample_rate == 48000
    assert abs(info.audio_duration_s - 1.0) < 0.03


@pytest.mark.parametrize("seconds", [1, 2, 7, 15] if SLOW else [1, 2, 15])
def test_every_duration_is_exact(backend: LTX2Backend, tmp_path: Path, seconds: int):
    info = probe(make_clip(backend, tmp_path / "c.mp4", 480, 480, seconds))
    assert info.frame_count == 24 * seconds
    assert abs(info.duration_s - seconds) < 1e-6
    assert abs(info.audio_duration_s - seconds) < 0.03


@pytest.mark.slow
def test_longest_clip_at_the_largest_size(backend: LTX2Backend, tmp_path: Path):
    info = probe(make_clip(backend, tmp_path / "c.mp4", 1280, 720, 15))
    assert (info.width, info.height, info.frame_count) == (1280, 720, 360)


def test_same_seed_same_bytes_other_seed_other_bytes(backend: LTX2Backend, tmp_path: Path):
    def digest(name: str, seed: int) -> str:
        path = make_clip(backend, tmp_path / name, 480, 480, 1, seed=seed)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest("a.mp4", 5) == digest("b.mp4", 5)
    assert digest("c.mp4", 5) != digest("d.mp4", 6)


def test_cancel_stops_within_a_step(backend: LTX2Backend):
    from openimagine.backends.base import Canceled

    seen: list[int] = []
    params = GenerationParams("x", backend.grid(480, 480, 24), fps=24, seed=1)
    with pytest.raises(Canceled):
        backend.generate(params, lambda i, n: seen.append(i), lambda: len(seen) >= 2)
    assert seen == [1, 2]

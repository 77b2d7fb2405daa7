"""Image-, reference- and video-conditioning through the real diffusers LTX-2 pipelines with
the tiny random weights: the input reaches the conditioning latents and changes the output,
deterministically."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from openimagine.backends.base import Clip, Conditioning, Continuation
from openimagine.backends.ltx2 import LTX2Backend
from openimagine.domain.generation import GenerationParams

W, H, FRAMES = 480, 480, 9


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> LTX2Backend:
    os.environ["HF_HUB_OFFLINE"] = "1"
    b = LTX2Backend(None, tmp_path_factory.mktemp("models"), torch_threads=2)
    b.load("cpu")
    return b


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _run(backend: LTX2Backend, cond: Conditioning | None, seed: int = 3) -> Clip:
    grid = backend.grid(W, H, FRAMES)
    params = GenerationParams("a lighthouse in a storm", grid, fps=24, seed=seed)
    return backend.generate(params, lambda _i, _n: None, lambda: False, cond)


def _differ(a: Clip, b: Clip) -> bool:
    return not np.array_equal(a.frames, b.frames)


def test_the_first_frame_image_reaches_the_conditioning_latents(backend: LTX2Backend):
    pipe = backend._task_pipe("LTX2ImageToVideoPipeline")
    seen: list[tuple[Any, Any]] = []
    original = pipe.prepare_latents

    def spy(*args: Any, **kwargs: Any) -> Any:
        latents, mask = original(*args, **kwargs)
        seen.append((latents.clone(), mask.clone()))
        return latents, mask

    pipe.prepare_latents = spy
    try:
        _run(backend, Conditioning(first_frame=_image(1)))
        _run(backend, Conditioning(first_frame=_image(2)))
    finally:
        del pipe.prepare_latents
    (lat_a, mask), (lat_b, _) = seen
    cond = mask.squeeze(-1) == 1  # tokens of the first latent frame: the clean image
    assert cond.any() and not cond.all()
    # The image decides the conditioned tokens; the noise everywhere else is the seed's.
    assert not np.allclose(lat_a[cond].numpy(), lat_b[cond].numpy())
    assert np.array_equal(lat_a[~cond].numpy(), lat_b[~cond].numpy())


def test_image_to_video_is_deterministic_and_follows_the_image(backend: LTX2Backend):
    plain = _run(backend, None)
    a1 = _run(backend, Conditioning(first_frame=_image(1)))
    a2 = _run(backend, Conditioning(first_frame=_image(1)))
    b = _run(backend, Conditioning(first_frame=_image(2)))
    assert np.array_equal(a1.frames, a2.frames) and np.array_equal(a1.audio, a2.audio)
    assert _differ(a1, b) and _differ(a1, plain)


def test_reference_images_change_the_clip_deterministically(backend: LTX2Backend):
    plain = _run(backend, None)
    refs = Conditioning(references=(_image(5), _image(6)))
    with1, with2 = _run(backend, refs), _run(backend, refs)
    assert np.array_equal(with1.frames, with2.frames)
    assert _differ(with1, plain)
    assert _differ(with1, _run(backend, Conditioning(references=(_image(7),))))


def test_a_source_video_conditions_every_frame_of_the_clip(backend: LTX2Backend):
    pipe = backend._task_pipe("LTX2ConditionPipeline")
    seen: list[tuple[Any, Any]] = []
    original = pipe.prepare_latents

    def spy(*args: Any, **kwargs: Any) -> Any:
        latents, mask, clean, coords = original(*args, **kwargs)
        seen.append((mask.clone(), clean.clone()))
        return latents, mask, clean, coords

    def source(level: int) -> np.ndarray:
        video = np.full((FRAMES, H, W, 3), level, dtype=np.uint8)
        video[FRAMES // 2 :] = 255 - level  # a cut half way: motion the output should keep
        return video

    pipe.prepare_latents = spy
    try:
        out1 = _run(backend, Conditioning(video=source(0)))
        out2 = _run(backend, Conditioning(video=source(0)))
        other = _run(backend, Conditioning(video=source(60)))
    finally:
        del pipe.prepare_latents
    (mask, clean_a), _, (_, clean_b) = seen
    # Every token of the clip is conditioned on the source, at the configured strength.
    assert np.allclose(mask.numpy(), backend.v2v_strength)
    assert not np.allclose(clean_a.numpy(), clean_b.numpy())
    assert np.array_equal(out1.frames, out2.frames) and np.array_equal(out1.audio, out2.audio)
    assert _differ(out1, other) and _differ(out1, _run(backend, None))


def _continuation(frames_seed: int, audio_seed: int) -> Conditioning:
    frames = np.random.default_rng(frames_seed).integers(0, 255, (17, H, W, 3), dtype=np.uint8)
    audio = np.random.default_rng(audio_seed).standard_normal((2, 34_000)).astype(np.float32)
    return Conditioning(continuation=Continuation(frames, audio * 0.1, 48_000))


def _extend(backend: LTX2Backend, cond: Conditioning) -> Clip:
    grid = backend.grid(W, H, 17 + 24)
    params = GenerationParams("the storm passes", grid, fps=24, seed=3)
    return backend.generate(params, lambda _i, _n: None, lambda: False, cond)


def test_an_extension_opens_on_the_inputs_last_frames_and_holds_its_audio(
    backend: LTX2Backend,
):
    pipe = backend._extend_pipe()
    seen: list[Any] = []
    original = pipe.prepare_latents

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seen.append(out[1].clone())  # the conditioning mask
        return out

    pipe.prepare_latents = spy
    try:
        base = _extend(backend, _continuation(1, 1))
    finally:
        del pipe.prepare_latents
    [mask] = seen
    held = mask.squeeze(-1) == 1  # the first latent frames: the input's last 17 frames, clean
    assert held.any() and not held.all()
    assert base.frames.shape[0] >= 17 + 24
    again = _extend(backend, _continuation(1, 1))
    assert np.array_equal(base.frames, again.frames) and np.array_equal(base.audio, again.audio)
    # Other trailing frames, or other trailing audio, give another continuation.
    assert _differ(base, _extend(backend, _continuation(2, 1)))
    other_audio = _extend(backend, _continuation(1, 2))
    assert not np.array_equal(base.audio, other_audio.audio)


def test_the_held_audio_latents_are_the_inputs_at_the_last_step(backend: LTX2Backend):
    from openimagine.backends.ltx2 import _AudioHold

    pipe = backend._extend_pipe()
    cond = _continuation(1, 1)
    assert cond.continuation is not None
    hold = _AudioHold(pipe, cond.continuation, seed=3)
    latents = hold.noise.clone() * 0 + 7  # anything the denoiser left there
    hold(pipe, len(pipe.scheduler.sigmas) - 1, latents)  # after the last step: sigma 0
    assert np.allclose(latents[:, : hold.clean.shape[1]].numpy(), hold.clean.numpy())

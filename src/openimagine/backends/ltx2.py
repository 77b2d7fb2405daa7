"""LTX-2 through diffusers: one set of weights serves text-, image- and video-to-video, each
with stereo audio.

The task pipelines share the loaded components through `from_pipe` (no second copy of the
weights):
- text-to-video: `LTX2Pipeline`;
- image-to-video: `LTX2ImageToVideoPipeline`, the image as the clean first latent frame;
- reference images (text-to-video): `LTX2ConditionPipeline` keyframe conditions, each image
  at an evenly spaced frame index with partial strength, so it steers the clip without
  becoming a hard frame;
- video-to-video: `LTX2ConditionPipeline` with the whole source clip as one condition at
  frame 0, at partial strength: its latents start less noisy and are blended back at every
  step, so the source's layout and motion carry through while the prompt restyles it. (The
  IC-LoRA path, `LTX2InContextPipeline`, needs IC-LoRA weights, which no checkpoint here has.)
- extension: `LTX2ConditionPipeline` with the input's trailing frames as a hard condition at
  frame 0, and its trailing audio held in the first audio latents (`_AudioHold`): the clip
  opens on the input's end, sound included, and goes on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from openimagine.backends.audio_features import log_mel
from openimagine.backends.base import (
    BackendInfo,
    Canceled,
    Clip,
    Conditioning,
    Continuation,
    StepCallback,
    StopCheck,
)
from openimagine.backends.tiny import MARKER, ensure_tiny_checkpoint
from openimagine.config import Settings
from openimagine.domain.generation import GenerationParams, Grid

# Distilled LTX-2 runs without CFG, STG or modality guidance: one transformer pass per step.
_DISTILLED = {
    "guidance_scale": 1.0,
    "stg_scale": 0.0,
    "modality_scale": 1.0,
    "audio_guidance_scale": 1.0,
    "audio_stg_scale": 0.0,
    "audio_modality_scale": 1.0,
    "spatio_temporal_guidance_blocks": None,
}


class LTX2Backend:
    """`LTX2Pipeline` (and its siblings via `from_pipe`) loaded once per worker.

    Args:
        checkpoint: a diffusers LTX-2 checkpoint directory; None builds (once) and loads the
            offline tiny checkpoint in `models_dir`.
        models_dir: where the tiny checkpoint is built.
        steps: denoising steps (None: the checkpoint's default).
        torch_threads: CPU threads for torch (None: torch's default).
    """

    def __init__(
        self,
        checkpoint: str | None,
        models_dir: Path,
        steps: int | None = None,
        torch_threads: int | None = None,
    ) -> None:
        self._checkpoint = checkpoint
        self._models_dir = models_dir
        self._steps = steps
        self._threads = torch_threads
        self._pipe: Any = None
        self._task_pipes: dict[str, Any] = {}
        # Condition strengths (0: ignored, 1: kept exactly): a source video restyled but
        # recognizable, references felt but not copied.
        self.v2v_strength = 0.7
        self.reference_strength = 0.5
        self._device = "cpu"
        self._config: dict[str, Any] = {}

    def load(self, device: str) -> BackendInfo:
        """Load the pipeline from local files only; build the tiny one first if needed."""
        import torch
        from diffusers import LTX2Pipeline

        _quiet()
        if self._threads:
            torch.set_num_threads(self._threads)
        path = (
            Path(self._checkpoint) if self._checkpoint else ensure_tiny_checkpoint(self._models_dir)
        )
        marker = path / MARKER
        self._config = json.loads(marker.read_text()) if marker.exists() else {}
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        pipe = LTX2Pipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to(device)
        self._device = device
        return BackendInfo(
            name="ltx2",
            weights=str(self._config.get("name", path)),
            random_weights=bool(self._config.get("random_weights", False)),
            audio_sample_rate=int(pipe.vocoder.config.output_sampling_rate),
            default_steps=self._default_steps(),
        )

    def _default_steps(self) -> int:
        return int(self._steps or self._config.get("default_steps", 30))

    def grid(self, width: int, height: int, num_frames: int) -> Grid:
        """Sides up to multiples of 32; frames up to the next 8k+1 (the VAE's grid)."""
        return Grid(
            width=math.ceil(width / 32) * 32,
            height=math.ceil(height / 32) * 32,
            num_frames=math.ceil(max(num_frames - 1, 1) / 8) * 8 + 1,
        )

    def _guidance(self) -> dict[str, Any]:
        if self._config.get("guidance", "distilled") == "distilled":
            return dict(_DISTILLED)
        return {}

    def _task_pipe(self, name: str) -> Any:
        """The task pipeline `name` over the loaded components, made once."""
        if name not in self._task_pipes:
            import diffusers

            pipe = getattr(diffusers, name).from_pipe(self._pipe)
            pipe.set_progress_bar_config(disable=True)
            self._task_pipes[name] = pipe
        return self._task_pipes[name]

    def _inputs(self, cond: Conditioning | None, num_frames: int) -> tuple[Any, dict[str, Any]]:
        """The pipeline for a conditioning, and the arguments that carry it."""
        if cond is None or cond.empty:
            return self._pipe, {}
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
        from PIL import Image

        if cond.continuation is not None:
            # Strength 1: the continuation's first frames are the input's last, kept exactly
            # in latent space, so the motion carries on from them.
            frames = [Image.fromarray(f) for f in cond.continuation.frames]
            condition = LTX2VideoCondition(frames=frames, index=0, strength=1.0)
            return self._extend_pipe(), {"conditions": [condition]}

        if cond.first_frame is not None:
            # A PIL image gets the pipeline's H.264 round trip (image_crf), as in training.
            pipe = self._task_pipe("LTX2ImageToVideoPipeline")
            return pipe, {"image": Image.fromarray(cond.first_frame)}
        conditions = []
        if cond.video is not None:
            frames = [Image.fromarray(f) for f in cond.video[:num_frames]]
            conditions.append(
                LTX2VideoCondition(frames=frames, index=0, strength=self.v2v_strength)
            )
        n = len(cond.references)
        latent_frames = (num_frames - 1) // 8 + 1  # `index` counts latent frames (8 each)
        for i, ref in enumerate(cond.references):
            # Evenly spaced inside the clip, never latent frame 0 (that would make the
            # reference the opening frame, which is frameImages' job).
            index = max(1, min(latent_frames - 1, round((i + 1) * latent_frames / (n + 1))))
            conditions.append(
                LTX2VideoCondition(
                    frames=Image.fromarray(ref), index=index, strength=self.reference_strength
                )
            )
        return self._task_pipe("LTX2ConditionPipeline"), {"conditions": conditions}

    def _extend_pipe(self) -> Any:
        """`LTX2ConditionPipeline` that also hands its audio latents to the step callback."""
        if "extend" not in self._task_pipes:
            from diffusers import LTX2ConditionPipeline

            class _ExtendPipeline(LTX2ConditionPipeline):  # type: ignore[misc]
                _callback_tensor_inputs: ClassVar[list[str]] = [
                    *LTX2ConditionPipeline._callback_tensor_inputs,
                    "audio_latents",
                ]

            pipe = _ExtendPipeline.from_pipe(self._pipe)
            pipe.set_progress_bar_config(disable=True)
            self._task_pipes["extend"] = pipe
        return self._task_pipes["extend"]

    def generate(
        self,
        params: GenerationParams,
        on_step: StepCallback,
        should_stop: StopCheck,
        conditioning: Conditioning | None = None,
    ) -> Clip:
        """Run the pipeline on `params.grid`; progress per denoising step."""
        import torch

        grid = params.grid
        steps = params.steps or self._default_steps()
        generator = torch.Generator(device="cpu").manual_seed(params.seed)
        pipe, extra = self._inputs(conditioning, grid.num_frames)
        hold = None
        if conditioning is not None and conditioning.continuation is not None:
            hold = _AudioHold(pipe, conditioning.continuation, params.seed)
            extra["callback_on_step_end_tensor_inputs"] = ["latents", "audio_latents"]

        def step_end(pipe_: Any, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if hold is not None:
                hold(pipe_, i, kwargs["audio_latents"])
            on_step(i + 1, steps)
            if should_stop():
                # Raising (rather than setting the pipeline's interrupt flag) also skips the
                # VAE decode that would otherwise still run after the last step.
                raise Canceled
            return kwargs

        with torch.inference_mode():
            out = pipe(
                prompt=params.prompt,
                negative_prompt="",
                height=grid.height,
                width=grid.width,
                num_frames=grid.num_frames,
                frame_rate=float(params.fps),
                num_inference_steps=steps,
                generator=generator,
                output_type="np",
                max_sequence_length=int(self._config.get("max_sequence_length", 1024)),
                callback_on_step_end=step_end,
                **self._guidance(),
                **extra,
            )
        audio = out.audio[0]
        if hasattr(audio, "float"):  # a torch tensor
            audio = audio.float().cpu().numpy()
        return Clip(
            frames=out.frames[0],
            audio=np.asarray(audio, dtype=np.float32),
            sample_rate=int(self._pipe.vocoder.config.output_sampling_rate),
        )


class _AudioHold:
    """Holds the first audio latent frames of a continuation at the input's trailing audio.

    LTX-2's pipelines condition video frames, not audio, so the audio is held the way
    inpainting holds known pixels: after every step the held frames are set back to the
    input's clean latents noised to the level of the next step (x = (1 - sigma) * clean +
    sigma * noise, flow matching's path), and at the last step to the clean latents
    themselves. The rest of the track is denoised next to them, attending to them.
    """

    def __init__(self, pipe: Any, continuation: Continuation, seed: int) -> None:
        import torch

        vae = pipe.audio_vae
        rate = int(vae.config.sample_rate)
        wave = _at_rate(continuation.audio, continuation.sample_rate, rate)
        mel = log_mel(wave, rate, int(vae.config.mel_hop_length), int(vae.config.mel_bins))
        features = torch.from_numpy(mel)[None].to(device=vae.device, dtype=vae.dtype)
        with torch.inference_mode():
            latents = vae.encode(features).latent_dist.mode()
        packed = pipe._pack_audio_latents(latents)
        self.clean = pipe._normalize_audio_latents(packed, vae.latents_mean, vae.latents_std)
        noise = torch.Generator(device="cpu").manual_seed(seed + 1)
        self.noise = torch.randn(self.clean.shape, generator=noise).to(self.clean)

    def __call__(self, pipe: Any, step: int, audio_latents: Any) -> None:
        held = min(self.clean.shape[1], audio_latents.shape[1])
        sigmas = pipe.scheduler.sigmas
        sigma = float(sigmas[step + 1]) if step + 1 < len(sigmas) else 0.0
        clean = self.clean[:, :held].to(audio_latents)
        audio_latents[:, :held] = (1 - sigma) * clean + sigma * self.noise[:, :held].to(clean)


def _at_rate(audio: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Stereo `[2, N]` audio brought down to the audio VAE's rate: by the vocoder's own
    anti-aliased decimation when the rates divide (48 kHz to 16 kHz), else by linear
    interpolation (the features only need the band below the VAE's Nyquist)."""
    import torch
    from diffusers.pipelines.ltx2.vocoder import DownSample1d

    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if wave.shape[0] == 1:
        wave = wave.repeat(2, 1)
    if rate == to_rate:
        same: np.ndarray = wave.numpy()
        return same
    if rate % to_rate == 0:
        out = DownSample1d(ratio=rate // to_rate)(wave[None])[0]
    else:
        size = max(1, round(wave.shape[1] * to_rate / rate))
        out = torch.nn.functional.interpolate(wave[None], size=size, mode="linear")[0]
    result: np.ndarray = out.numpy()
    return result


def _quiet() -> None:
    """No progress bars or warnings from the model libraries in the worker's logs."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


def from_settings(settings: Settings) -> LTX2Backend:
    """The `ltx2` entry point: tiny random weights unless a checkpoint is configured."""
    return LTX2Backend(
        checkpoint=settings.model.checkpoint,
        models_dir=settings.models_dir(),
        steps=settings.model.steps,
        torch_threads=settings.workers.torch_threads,
    )

"""An extension job: what the backend generates (the input's last frames, then the new
seconds), what it is conditioned on, and the output assembled from the input and the new part.

The output is the input, re-encoded at the output size, followed by the continuation; the
audio likewise, with a short crossfade at the seam (the continuation's audio already opens on
the input's, so the fade only hides the re-encode's edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openimagine.backends.base import Clip, Continuation
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.domain.generation import GenerationJob, Grid
from openimagine.errors import MediaError
from openimagine.media.audio import read_audio
from openimagine.media.fit import fit_audio, fit_frame, samples_needed
from openimagine.media.videos import sample_frames

# The input's trailing frames the continuation is conditioned on: 17 = 1 + 2 × 8, three
# latent frames of LTX-2's VAE, enough to carry motion, not just a still.
CONTEXT_FRAMES = 17
_FADE_S = 0.01


@dataclass(frozen=True, slots=True)
class ExtensionPlan:
    """How an extension job's frames divide."""

    input_frames: int  #: of the input, at the output's rate
    added_frames: int  #: new ones
    context: int  #: trailing input frames the continuation opens on

    @property
    def generated_frames(self) -> int:
        """What the backend makes: the context, then the new frames."""
        return self.context + self.added_frames


def plan(spec: GenerationJob) -> ExtensionPlan:
    """The division of an extension job (`mode` EXTEND: `duration_s` is what is added)."""
    added = (spec.duration_s or 0) * spec.fps
    input_frames = spec.num_frames - added
    return ExtensionPlan(input_frames, added, min(CONTEXT_FRAMES, input_frames))


@dataclass(frozen=True, slots=True)
class Source:
    """The input as the output shows it: its frames fitted to the output size, its audio."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int


def load_source(
    spec: GenerationJob, blobs: BlobStore, extension: ExtensionPlan, sample_rate: int
) -> Source:
    """The input's frames at the output's rate and size, and its audio at `sample_rate`."""
    if spec.video is None:
        raise ValueError("an extension job without its input video")
    try:
        with blobs.as_file(spec.video) as path:
            frames = np.stack(
                [
                    fit_frame(f, spec.width, spec.height)
                    for f in sample_frames(path, spec.fps, extension.input_frames)
                ]
            )
            audio = read_audio(path, sample_rate)
    except BlobNotFound:
        raise MediaError(
            "video: the stored input is gone (it may have expired).",
            code="mediaNotFound",
            parameter="video",
        ) from None
    wanted = samples_needed(extension.input_frames, spec.fps, sample_rate)
    return Source(frames, fit_audio(audio, sample_rate, wanted), sample_rate)


def continuation(source: Source, extension: ExtensionPlan, grid: Grid, fps: int) -> Continuation:
    """The input's last `context` frames, fitted to the generation grid, and their audio."""
    tail = source.frames[-extension.context :]
    frames = np.stack([fit_frame(f, grid.width, grid.height) for f in tail])
    start = source.audio.shape[1] - samples_needed(extension.context, fps, source.sample_rate)
    return Continuation(frames, source.audio[:, max(0, start) :], source.sample_rate)


def assemble(source: Source, clip: Clip, extension: ExtensionPlan, spec: GenerationJob) -> Clip:
    """The output: the input, then the generated frames after the context; the audio of the
    input, then the generated audio from the same moment, crossfaded over 10 ms."""
    if clip.sample_rate != source.sample_rate:
        raise ValueError("the input's audio was read at another rate than the backend's")
    new = clip.frames[extension.context : extension.generated_frames]
    if new.shape[0] < extension.added_frames:
        raise ValueError(f"backend produced {clip.frames.shape[0]} frames, too few to extend")
    added = np.stack([fit_frame(f, spec.width, spec.height) for f in new])
    rate = clip.sample_rate
    start = samples_needed(extension.context, spec.fps, rate)
    tail = fit_audio(
        clip.audio[:, start:], rate, samples_needed(extension.added_frames, spec.fps, rate)
    )
    head = source.audio.copy()
    fade = min(int(rate * _FADE_S), head.shape[1], start)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        head[:, -fade:] = head[:, -fade:] * (1 - ramp) + clip.audio[:, start - fade : start] * ramp
    return Clip(
        frames=np.concatenate([source.frames, added]),
        audio=np.concatenate([head, tail], axis=1),
        sample_rate=rate,
    )

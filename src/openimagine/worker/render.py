"""Turn one backend clip into the exact file the request asked for (blocking; run in a thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openimagine.backends.base import Clip
from openimagine.media.encode import EncodeSpec, VideoEncoder
from openimagine.media.fit import fit_audio, fit_frame, samples_needed


@dataclass(frozen=True, slots=True)
class Target:
    """What the output file must be."""

    width: int
    height: int
    num_frames: int
    fps: int
    fmt: str
    quality: int
    threads: int
    comment: str


def render_clip(
    clip: Clip, target: Target, path: Path, on_frame: Callable[[int, int], None] | None = None
) -> None:
    """Fit `clip` to exactly `target` (center crop, first N frames, audio trimmed/padded to
    the same duration) and encode it to `path`, one frame at a time."""
    if clip.frames.shape[0] < target.num_frames:
        raise ValueError(
            f"backend produced {clip.frames.shape[0]} frames, {target.num_frames} needed"
        )
    audio = fit_audio(
        clip.audio,
        clip.sample_rate,
        samples_needed(target.num_frames, target.fps, clip.sample_rate),
    )
    spec = EncodeSpec(
        fmt=target.fmt,
        width=target.width,
        height=target.height,
        fps=target.fps,
        quality=target.quality,
        threads=target.threads,
        metadata={"comment": target.comment},
    )
    with VideoEncoder(path, spec, audio, clip.sample_rate) as encoder:
        for i in range(target.num_frames):
            encoder.write_frame(fit_frame(clip.frames[i], target.width, target.height))
            if on_frame is not None:
                on_frame(i + 1, target.num_frames)

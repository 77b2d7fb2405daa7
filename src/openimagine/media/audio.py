"""Audio as float arrays: a video file's track read back at a chosen rate (libswresample,
through PyAV, as the encoder uses)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.audio.resampler import AudioResampler


def _stereo_frames(resampler: AudioResampler, frame: av.AudioFrame | None) -> list[np.ndarray]:
    return [f.to_ndarray().reshape(2, -1) for f in resampler.resample(frame)]


def read_audio(path: Path | str, sample_rate: int) -> np.ndarray:
    """The first audio track of `path` as stereo float32 `[2, N]` at `sample_rate`; `[2, 0]`
    when the file has none."""
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return np.zeros((2, 0), np.float32)
        resampler = AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
        for frame in container.decode(container.streams.audio[0]):
            parts += _stereo_frames(resampler, frame)
        parts += _stereo_frames(resampler, None)  # what the resampler still holds
    return (
        np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((2, 0), np.float32)
    )

"""Fit generated frames and audio to the exact size, frame count and sample count requested."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from PIL import Image


def _round_half_up(value: Fraction) -> int:
    # Python's round() is banker's rounding; half-up keeps frame and sample counts monotonic.
    return math.floor(value + Fraction(1, 2))


def frames_needed(duration_s: Fraction | int, fps: int) -> int:
    """Number of video frames for a clip of `duration_s` seconds at `fps`.

    Args:
        duration_s: Clip duration in seconds (exact; a float is converted exactly).
        fps: Frames per second, positive.

    Returns:
        `duration_s * fps` rounded to the nearest integer (halves round up).

    Raises:
        ValueError: If `fps` is not positive or the duration is negative.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(duration_s, int) and duration_s >= 0:
        return duration_s * fps  # perf: whole seconds (every duration a request gives)
    duration = Fraction(duration_s)
    if duration < 0:
        raise ValueError(f"duration must not be negative, got {duration_s}")
    return _round_half_up(duration * fps)


def samples_needed(num_frames: int, fps: int, sample_rate: int) -> int:
    """Number of audio samples that span exactly `num_frames` video frames.

    Args:
        num_frames: Video frame count, non-negative.
        fps: Frames per second, positive.
        sample_rate: Audio samples per second, positive.

    Returns:
        `num_frames / fps * sample_rate` rounded to the nearest integer (halves round up), so
        `samples_needed(i + 1, ...) - samples_needed(i, ...)` is the audio for frame `i`.

    Raises:
        ValueError: If an argument is out of range.
    """
    if fps <= 0 or sample_rate <= 0 or num_frames < 0:
        raise ValueError(
            f"need num_frames >= 0, fps > 0, sample_rate > 0; "
            f"got {num_frames}, {fps}, {sample_rate}"
        )
    return _round_half_up(Fraction(num_frames * sample_rate, fps))


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    """Float [0, 1] or uint8 pixels to a new C-contiguous uint8 array."""
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if not np.issubdtype(frame.dtype, np.floating):
        raise ValueError(f"frame dtype must be uint8 or floating, got {frame.dtype}")
    # perf: one float32 scratch buffer, every step in place, then the uint8 result.
    scratch: np.ndarray = np.multiply(frame, 255.0, dtype=np.float32)
    # fmax/fmin clip and also map NaN (e.g. an fp16 VAE overflow) to black, with no masks.
    np.fmax(scratch, 0.0, out=scratch)
    np.fmin(scratch, 255.0, out=scratch)
    np.rint(scratch, out=scratch)
    return scratch.astype(np.uint8)


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop or scale one RGB frame to exactly `width` x `height`.

    A frame at least as large as the target on both sides is center-cropped with no scaling.
    Otherwise it is scaled (Lanczos, aspect ratio kept) just enough to cover the target, then
    center-cropped.

    Args:
        frame: `[H, W, 3]` pixels, either uint8 or float in `[0, 1]` (as diffusers'
            `output_type="np"` gives); float values are clipped, scaled by 255 and rounded.
        width: Target width in pixels, positive.
        height: Target height in pixels, positive.

    Returns:
        A C-contiguous uint8 array of shape `[height, width, 3]`; it may be `frame` itself
        when that already is exactly that.

    Raises:
        ValueError: If the frame is not `[H, W, 3]`, has an unsupported dtype, or the target
            size is not positive.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame must be [H, W, 3], got shape {frame.shape}")
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    src_h, src_w = frame.shape[0], frame.shape[1]
    if src_w >= width and src_h >= height:
        top, left = (src_h - height) // 2, (src_w - width) // 2
        # perf: crop before converting, so a float frame is converted at the target size only.
        return _to_uint8(frame[top : top + height, left : left + width])
    # Cover: the source box with the target's aspect ratio, as large as fits, centered.
    scale = max(width / src_w, height / src_h)
    box_w, box_h = width / scale, height / scale
    box_left, box_top = (src_w - box_w) / 2, (src_h - box_h) / 2
    image = Image.fromarray(_to_uint8(frame))
    # perf: resize with `box` scales and crops in one pass, no full-size intermediate.
    resized = image.resize(
        (width, height),
        Image.Resampling.LANCZOS,
        box=(box_left, box_top, box_left + box_w, box_top + box_h),
    )
    return np.asarray(resized, dtype=np.uint8).copy(order="C")


def fit_audio(audio: np.ndarray, sample_rate: int, num_samples: int) -> np.ndarray:
    """Fit audio to stereo and to exactly `num_samples` samples.

    Args:
        audio: `[C, N]` float samples with C = 1 or 2 (a 1-D array is taken as mono).
        sample_rate: Sample rate of `audio` in Hz; it is kept (no resampling happens here).
        num_samples: Exact number of samples wanted, e.g. from `samples_needed`.

    Returns:
        float32 `[2, num_samples]`: mono duplicated to both channels, trimmed or zero-padded
        at the end, NaNs zeroed and values clipped to `[-1, 1]`.

    Raises:
        ValueError: If the shape, sample rate or sample count is invalid.
    """
    if sample_rate <= 0 or num_samples < 0:
        raise ValueError(
            f"need sample_rate > 0 and num_samples >= 0, got {sample_rate}, {num_samples}"
        )
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must be [C, N] with C = 1 or 2, got shape {audio.shape}")
    out = np.zeros((2, num_samples), dtype=np.float32)
    keep = min(num_samples, audio.shape[1])
    # Broadcasting copies a mono row into both channels.
    out[:, :keep] = audio[:, :keep]
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(out, -1.0, 1.0, out=out)
    return out

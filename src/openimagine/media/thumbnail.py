"""A video's first frame as a WebP thumbnail."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from openimagine.media.probe import decode_frames


def first_frame_webp(path: Path, quality: int = 85) -> bytes | None:
    """The first frame of `path` as WebP, or None for a video without frames (blocking)."""
    frames = decode_frames(path)
    try:
        first = next(frames, None)
    finally:
        frames.close()  # type: ignore[attr-defined]
    if first is None:
        return None
    out = io.BytesIO()
    Image.fromarray(first).save(out, format="WEBP", quality=quality)
    return out.getvalue()

"""Read a job's input media back from the blob store, fitted to the generation grid."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from openimagine.backends.base import Conditioning
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.domain.generation import GenerationJob, Grid
from openimagine.errors import MediaError
from openimagine.media.fit import fit_frame
from openimagine.media.videos import sample_frames


def _gone(parameter: str) -> MediaError:
    return MediaError(
        f"{parameter}: the stored input is gone (it may have expired).",
        code="mediaNotFound",
        parameter=parameter,
    )


def _image(blobs: BlobStore, key: str, grid: Grid, parameter: str) -> np.ndarray:
    try:
        with blobs.as_file(key) as path, Image.open(path) as img:
            # First frame of an animated GIF/WEBP; EXIF orientation as a viewer shows it.
            rgb = ImageOps.exif_transpose(img).convert("RGB")
            return fit_frame(np.asarray(rgb), grid.width, grid.height)
    except BlobNotFound:
        raise _gone(parameter) from None


def _video(blobs: BlobStore, key: str, grid: Grid, fps: int) -> np.ndarray:
    try:
        with blobs.as_file(key) as path:
            frames = sample_frames(path, fps, grid.num_frames)
            return np.stack([fit_frame(f, grid.width, grid.height) for f in frames])
    except BlobNotFound:
        raise _gone("inputs.video") from None


def load_conditioning(spec: GenerationJob, blobs: BlobStore, grid: Grid) -> Conditioning | None:
    """The conditioning a job carries, or None for plain text-to-video."""
    first = (
        _image(blobs, spec.frame_image, grid, "inputs.frameImages") if spec.frame_image else None
    )
    refs = tuple(
        _image(blobs, key, grid, f"inputs.referenceImages[{i}]")
        for i, key in enumerate(spec.reference_images)
    )
    video = _video(blobs, spec.video, grid, spec.fps) if spec.video else None
    if first is None and not refs and video is None:
        return None
    return Conditioning(first_frame=first, references=refs, video=video)

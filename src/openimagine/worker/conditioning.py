"""Read a resolved request's input media back from the blob store, fitted to the grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from openimagine.backends.base import Conditioning, Grid
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.domain.params import VideoRequest, blob_key
from openimagine.errors import MediaError
from openimagine.media.fit import fit_frame
from openimagine.media.videos import sample_frames


def _path(blobs: LocalBlobStore, ref: str, parameter: str) -> Path:
    key = blob_key(ref)
    path = blobs.path(key) if key is not None else None
    if path is None:
        raise MediaError(
            f"{parameter}: the stored input is gone (it may have expired).",
            code="mediaNotFound",
            parameter=parameter,
        )
    return path


def _image(blobs: LocalBlobStore, ref: str, grid: Grid, parameter: str) -> np.ndarray:
    with Image.open(_path(blobs, ref, parameter)) as img:
        # First frame of an animated GIF/WEBP; EXIF orientation as a viewer shows it.
        rgb = ImageOps.exif_transpose(img).convert("RGB")
        return fit_frame(np.asarray(rgb), grid.width, grid.height)


def load_conditioning(
    request: VideoRequest, blobs: LocalBlobStore, grid: Grid, fps: int
) -> Conditioning | None:
    """The conditioning a request carries, or None for plain text-to-video."""
    first = (
        _image(blobs, request.frame_image, grid, "inputs.frameImages")
        if request.frame_image
        else None
    )
    refs = tuple(
        _image(blobs, ref, grid, f"inputs.referenceImages[{i}]")
        for i, ref in enumerate(request.reference_images)
    )
    video = None
    if request.video:
        path = _path(blobs, request.video, "inputs.video")
        frames = [
            fit_frame(f, grid.width, grid.height) for f in sample_frames(path, fps, grid.num_frames)
        ]
        video = np.stack(frames)
    if first is None and not refs and video is None:
        return None
    return Conditioning(first_frame=first, references=refs, video=video)

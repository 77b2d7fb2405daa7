"""Check input images: format, dimensions and pixel limits, before any full decode."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from openimagine.errors import MediaError

log = logging.getLogger(__name__)

FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an accepted image is."""

    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        """Its MIME type."""
        return FORMATS[self.format]

    @property
    def extension(self) -> str:
        """Its file extension."""
        return EXTENSIONS[self.format]


def inspect_image(data: bytes, parameter: str, max_pixels: int) -> ImageInfo:
    """Identify an image from its header, check the pixel limit, then fully decode it once to
    prove it is not truncated. Dimensions are reported after EXIF orientation."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if fmt not in FORMATS:
                raise MediaError(
                    f"{parameter}: unsupported image format {fmt or 'unknown'}; "
                    f"use one of {', '.join(FORMATS)}.",
                    code="unsupportedImageFormat",
                    parameter=parameter,
                    allowedValues=list(FORMATS),
                )
            if width * height > max_pixels:
                raise MediaError(
                    f"{parameter}: {width}x{height} is over the limit of {max_pixels} pixels.",
                    code="imageTooLarge",
                    parameter=parameter,
                    max=max_pixels,
                )
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
                oriented = ImageOps.exif_transpose(img)
            return ImageInfo(fmt, oriented.width, oriented.height)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(
            f"{parameter}: the image is over the pixel limit ({max_pixels}).",
            code="imageTooLarge",
            parameter=parameter,
            max=max_pixels,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow's text names a file or an in-memory object of this server: logged only.
        log.info("%s: not a readable image: %s", parameter, exc)
        raise MediaError(
            f"{parameter}: not a readable image (use PNG, JPEG, WEBP, BMP or GIF).",
            code="invalidImage",
            parameter=parameter,
        ) from None

"""Input media built inside the test suite: images, videos and broken files."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def image_bytes(width: int, height: int, fmt: str = "PNG", seed: int = 0, **save: object) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **save)
    return out.getvalue()


def rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG stored `width` x `height` whose EXIF orientation (6: rotate 90° clockwise)
    makes viewers show it `height` x `width`, as phones write portrait shots."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return image_bytes(width, height, "JPEG", exif=exif.tobytes())


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def huge_png_header(width: int = 40000, height: int = 40000) -> bytes:
    """A valid PNG signature and IHDR claiming a huge image, with a tiny body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write_video(
    path: Path,
    *,
    frames: int,
    fps: int,
    width: int,
    height: int,
    codec: str = "libx264",
    last_pts_s: float | None = None,
) -> Path:
    """A clip of moving gradients; with `last_pts_s`, its last frame is stamped that late
    (a file whose header claims a long duration, without encoding hours of frames)."""
    fmt = "webm" if path.suffix == ".webm" else None
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        y, x = np.mgrid[0:height, 0:width]
        for i in range(frames):
            rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], -1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            frame.pts = i
            if last_pts_s is not None and i == frames - 1:
                frame.pts = round(last_pts_s * fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path

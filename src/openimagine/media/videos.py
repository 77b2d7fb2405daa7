"""Check input videos (limits from the header first, then one full decode), and read their
frames back at the output frame rate."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from openimagine.errors import MediaError

# libavformat names of the containers the page accepts: MP4 and MOV share one demuxer.
log = logging.getLogger(__name__)

CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm"}


class VideoLimits(Protocol):
    """What an input video may be (the input settings have these fields)."""

    @property
    def max_video_pixels(self) -> int:
        """Pixels a frame."""
        ...

    @property
    def max_video_seconds(self) -> float:
        """Length."""
        ...

    @property
    def max_video_frames(self) -> int:
        """Frames."""
        ...


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """An accepted input video: its exact length is `frame_count / fps`."""

    container: str
    width: int
    height: int
    fps: Fraction
    frame_count: int

    @property
    def seconds(self) -> Fraction:
        """Exact length (a 202-frame 30 fps clip is 101/15 s)."""
        return Fraction(self.frame_count) / self.fps

    @property
    def content_type(self) -> str:
        """MIME type of its container."""
        return CONTAINERS[self.container]


def _bad(parameter: str, message: str, code: str = "invalidVideo", **extra: object) -> MediaError:
    return MediaError(f"{parameter}: {message}", code=code, parameter=parameter, **extra)


def inspect_video(path: Path, parameter: str, limits: VideoLimits) -> VideoInfo:
    """Identify a video, refuse it on its header's size and length, then decode every frame
    once (proving it is not truncated, and counting frames exactly)."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        # FFmpeg's text names the scratch file: the server's own path, logged, not answered.
        log.info("%s: not a readable video: %s", parameter, exc)
        raise _bad(parameter, "not a readable video (use MP4, MOV or WEBM).") from None
    with container:
        fmt = container.format.name
        if fmt not in CONTAINERS or not container.streams.video:
            raise _bad(
                parameter,
                f"unsupported video ({fmt}); use MP4, MOV or WEBM with a video track.",
                code="unsupportedVideoFormat",
            )
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = stream.average_rate or stream.guessed_rate
        if not width or not height or not fps:
            raise _bad(parameter, "the video has no frame size or frame rate.")
        if width * height > limits.max_video_pixels:
            raise _bad(
                parameter,
                f"{width}x{height} is over the limit of {limits.max_video_pixels} pixels a frame.",
                code="videoTooLarge",
                max=limits.max_video_pixels,
            )
        header_s = container.duration / av.time_base if container.duration else None
        if header_s is not None and header_s > limits.max_video_seconds:
            raise _too_long(parameter, header_s, limits)
        count = 0
        try:
            for _frame in container.decode(stream):
                count += 1
                if count > limits.max_video_frames or count / fps > limits.max_video_seconds:
                    raise _too_long(parameter, count / float(fps), limits)
        except av.error.FFmpegError as exc:
            log.info("%s: the video could not be decoded: %s", parameter, exc)
            raise _bad(parameter, "the video is damaged or cut short.") from None
        if count == 0:
            raise _bad(parameter, "the video has no frames.")
        return VideoInfo(fmt, width, height, Fraction(fps), count)


def _too_long(parameter: str, seconds: float, limits: VideoLimits) -> MediaError:
    return _bad(
        parameter,
        f"the video is {seconds:.1f} s long; the limit is {limits.max_video_seconds:g} s "
        f"and {limits.max_video_frames} frames.",
        code="videoTooLong",
        max=limits.max_video_seconds,
    )


def sample_frames(path: Path, fps: int, count: int) -> Iterator[np.ndarray]:
    """`count` RGB frames at `fps`, each the source frame showing at that moment; past the
    source's end its last frame repeats."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        src_fps = Fraction(stream.average_rate or stream.guessed_rate or fps)
        wanted = 0
        last: np.ndarray | None = None
        for index, frame in enumerate(container.decode(stream)):
            last = frame.to_ndarray(format="rgb24")
            # Output frame `wanted` shows at wanted/fps; source frame `index` covers
            # [index/src_fps, (index+1)/src_fps).
            while wanted < count and math.floor(Fraction(wanted) / fps * src_fps) <= index:
                yield last
                wanted += 1
            if wanted >= count:
                return
        while last is not None and wanted < count:
            yield last
            wanted += 1

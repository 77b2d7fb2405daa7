"""Read container, codec, size, frame rate, exact frame count and durations of a media file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.stream import Stream


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found in a media file; a field is None when the file has no such stream.

    Attributes:
        container: libavformat's format name, e.g. `"mov,mp4,m4a,3gp,3g2,mj2"` for MP4 and MOV
            or `"matroska,webm"` for WebM.
        video_codec: Codec name as ffprobe spells it, e.g. `"h264"` or `"vp9"`.
        width: Video width in pixels.
        height: Video height in pixels.
        fps: Average video frame rate.
        frame_count: Exact number of video packets demuxed (not the header's estimate).
        duration_s: Video duration in seconds, from the first to the end of the last packet.
        pix_fmt: Video pixel format, e.g. `"yuv420p"`.
        audio_codec: Codec name as ffprobe spells it, e.g. `"aac"` or `"opus"`.
        audio_channels: Number of audio channels.
        audio_sample_rate: Audio sample rate in Hz.
        audio_duration_s: Audio duration in seconds, without encoder priming and padding.
        metadata: Container metadata with lower-case keys (Matroska stores them upper-case).
    """

    container: str
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: Fraction | None = None
    frame_count: int | None = None
    duration_s: float | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    audio_duration_s: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Span:
    """Packets seen for one stream, in its time base."""

    packets: int = 0
    start: int | None = None
    end: int | None = None

    def add(self, pts: int | None, duration: int) -> None:
        self.packets += 1
        if pts is None:
            return
        self.start = pts if self.start is None else min(self.start, pts)
        self.end = pts + duration if self.end is None else max(self.end, pts + duration)

    def seconds(self, stream: Stream) -> float | None:
        """Presented duration: negative timestamps are priming (e.g. Opus pre-skip), not shown."""
        if self.start is not None and self.end is not None and stream.time_base is not None:
            return float((self.end - max(self.start, 0)) * stream.time_base)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return None


def _scan(container: InputContainer, streams: list[Stream]) -> dict[int, _Span]:
    """Demux every packet of `streams` (no decoding) and record counts and time spans."""
    spans = {stream.index: _Span() for stream in streams}
    if not streams:
        return spans
    for packet in container.demux(streams):
        if not packet.size:  # the flush packet demux() yields at the end of each stream
            continue
        stream = packet.stream
        duration = packet.duration or 0
        # WebM stores no per-frame video duration; a frame lasts one frame period.
        if not duration and stream.type == "video" and stream.average_rate and stream.time_base:
            duration = round(1 / (stream.average_rate * stream.time_base))
        spans[stream.index].add(packet.pts, duration)
    return spans


def probe(path: Path | str) -> MediaInfo:
    """Describe a media file: container, codecs, size, fps, exact frame count and durations.

    Reads every packet of the first video and first audio stream (without decoding), so the
    frame count and durations are exact rather than header estimates.

    Args:
        path: The file to read.

    Returns:
        A `MediaInfo`; video fields are None without a video stream, audio fields likewise.

    Raises:
        av.error.FFmpegError: If the file cannot be opened or parsed as media.
    """
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        streams: list[Stream] = [s for s in (video, audio) if s is not None]
        spans = _scan(container, streams)
        metadata = {key.lower(): value for key, value in container.metadata.items()}
        info = MediaInfo(container=container.format.name, metadata=metadata)
        if video is not None:
            ctx = video.codec_context
            info = replace(
                info,
                video_codec=ctx.codec.canonical_name,
                width=ctx.width,
                height=ctx.height,
                fps=video.average_rate,
                frame_count=spans[video.index].packets,
                duration_s=spans[video.index].seconds(video),
                pix_fmt=ctx.pix_fmt,
            )
        if audio is not None:
            actx = audio.codec_context
            info = replace(
                info,
                audio_codec=actx.codec.canonical_name,
                audio_channels=actx.channels,
                audio_sample_rate=actx.sample_rate,
                audio_duration_s=spans[audio.index].seconds(audio),
            )
        return info


def decode_frames(path: Path | str) -> Iterator[np.ndarray]:
    """Decode the first video stream to RGB frames, one at a time.

    Args:
        path: The file to read.

    Yields:
        uint8 `[height, width, 3]` RGB arrays, in presentation order; the conversion uses the
        colorspace the stream is tagged with.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")

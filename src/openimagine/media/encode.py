"""Encode RGB frames and stereo audio to MP4 (H.264 + AAC), WEBM (VP9 + Opus) or MOV, streaming."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import Flags, OutputContainer
from av.packet import Packet
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter
from av.video.stream import VideoStream

from openimagine.media.fit import samples_needed

FORMATS = ("MP4", "WEBM", "MOV")
QUALITY_MIN = 20
QUALITY_MAX = 99
OPUS_SAMPLE_RATE = 48_000

# AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace value for BT.709.
_BT709 = 1
# compat: PyAV's stub types Flags members' `.value` as Flags, not int.
_BITEXACT: int = int(Flags.bitexact.value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class _Recipe:
    """How one output format is muxed and encoded."""

    muxer: str
    content_type: str
    extension: str
    video_codec: str
    audio_codec: str
    audio_sample_format: str
    audio_bit_rate: int
    crf_at_best: int  # CRF for quality QUALITY_MAX
    crf_at_worst: int  # CRF for quality QUALITY_MIN


def _h264_aac(muxer: str, content_type: str, extension: str) -> _Recipe:
    return _Recipe(
        muxer,
        content_type,
        extension,
        video_codec="libx264",
        audio_codec="aac",
        audio_sample_format="fltp",
        audio_bit_rate=192_000,
        crf_at_best=12,
        crf_at_worst=45,
    )


_RECIPES = {
    "MP4": _h264_aac("mp4", "video/mp4", ".mp4"),
    "MOV": _h264_aac("mov", "video/quicktime", ".mov"),
    "WEBM": _Recipe(
        "webm",
        "video/webm",
        ".webm",
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        audio_sample_format="flt",
        audio_bit_rate=128_000,
        crf_at_best=15,
        crf_at_worst=60,
    ),
}


def _recipe(fmt: str) -> _Recipe:
    try:
        return _RECIPES[fmt.upper()]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}") from None


def content_type(fmt: str) -> str:
    """MIME type of an output format: `video/mp4`, `video/webm` or `video/quicktime`."""
    return _recipe(fmt).content_type


def extension(fmt: str) -> str:
    """File extension of an output format, with the dot: `.mp4`, `.webm` or `.mov`."""
    return _recipe(fmt).extension


def video_quality_setting(fmt: str, quality: int) -> int:
    """Map `outputQuality` (20..99) to the video encoder's CRF, linearly and monotonically.

    Higher quality gives a lower CRF, so a larger and better file:

    - MP4 and MOV (libx264, CRF 0..51): quality 99 -> CRF 12, quality 20 -> CRF 45
      (quality 95 -> 14, 75 -> 22, 50 -> 32).
    - WEBM (libvpx-vp9 constant quality, CRF 0..63): quality 99 -> CRF 15, quality 20 -> CRF 60
      (quality 95 -> 17, 75 -> 29, 50 -> 43).

    Args:
        fmt: One of `FORMATS`.
        quality: `outputQuality`, from 20 (smallest) to 99 (best).

    Returns:
        The CRF value for the format's video encoder.

    Raises:
        ValueError: If the format is unknown or the quality is out of range.
    """
    recipe = _recipe(fmt)
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be in {QUALITY_MIN}..{QUALITY_MAX}, got {quality}")
    span = recipe.crf_at_worst - recipe.crf_at_best
    steps = QUALITY_MAX - QUALITY_MIN
    # Integer half-up rounding of (quality - QUALITY_MIN) * span / steps.
    drop = (2 * (quality - QUALITY_MIN) * span + steps) // (2 * steps)
    return recipe.crf_at_worst - drop


@dataclass(frozen=True)
class EncodeSpec:
    """What to encode: format, exact size and frame rate, quality, threads and container tags.

    Attributes:
        fmt: One of `FORMATS`.
        width: Output width in pixels (even: yuv420p needs it).
        height: Output height in pixels (even).
        fps: Frames per second; the video time base is exactly `1/fps`.
        quality: `outputQuality` in 20..99, see `video_quality_setting`.
        threads: Encoder threads; fixed so output bytes do not depend on the host's CPU count.
        metadata: Container metadata, e.g. `{"comment": "..."}`.
    """

    fmt: str
    width: int
    height: int
    fps: int
    quality: int
    threads: int = 2
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _recipe(self.fmt)
        video_quality_setting(self.fmt, self.quality)
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"size must be positive and even, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.threads <= 0:
            raise ValueError(f"threads must be positive, got {self.threads}")


def _add_video_stream(container: OutputContainer, spec: EncodeSpec) -> VideoStream:
    recipe = _recipe(spec.fmt)
    stream = container.add_stream(recipe.video_codec, rate=spec.fps)
    if not isinstance(stream, VideoStream):
        raise TypeError(f"{recipe.video_codec} did not give a video stream")
    stream.width = spec.width
    stream.height = spec.height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, spec.fps)
    stream.codec_context.time_base = Fraction(1, spec.fps)
    # compat: ffmpeg's default `b` is 200 kb/s; 0 leaves rate control to CRF alone.
    stream.bit_rate = 0
    stream.thread_count = spec.threads
    # Tag what `write_frame` converts with, so players do not guess BT.601 for small frames.
    stream.color_range = int(ColorRange.MPEG)
    stream.color_primaries = _BT709
    stream.color_trc = _BT709
    stream.colorspace = _BT709
    crf = str(video_quality_setting(spec.fmt, spec.quality))
    if recipe.video_codec == "libx264":
        # PyAV defaults to slice threads; x264's frame threads compress better, still deterministic.
        stream.thread_type = "FRAME"
        # cpu-independent: the same request must give the same bytes; without it this x264 gave
        # different bytes for the same frames in about 1 run in 6 on one VM.
        stream.options = {"crf": crf, "preset": "medium", "x264-params": "cpu-independent=1"}
    else:
        # Constant-quality VP9 (crf with b:v 0); cpu-used 4 keeps CPU encodes in seconds.
        stream.options = {"crf": crf, "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    return stream


def _audio_rate(recipe: _Recipe, sample_rate: int) -> int:
    if recipe.audio_codec == "libopus":
        return OPUS_SAMPLE_RATE
    rates = av.Codec(recipe.audio_codec, "w").audio_rates
    return sample_rate if rates is None or sample_rate in rates else OPUS_SAMPLE_RATE


def _add_audio_stream(container: OutputContainer, recipe: _Recipe, rate: int) -> AudioStream:
    stream = container.add_stream(recipe.audio_codec, rate=rate)
    if not isinstance(stream, AudioStream):
        raise TypeError(f"{recipe.audio_codec} did not give an audio stream")
    stream.layout = "stereo"
    stream.format = recipe.audio_sample_format
    stream.bit_rate = recipe.audio_bit_rate
    stream.codec_context.time_base = Fraction(1, rate)
    return stream


def _check_audio(audio: np.ndarray | None, sample_rate: int) -> np.ndarray | None:
    if audio is None:
        return None
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be [2, N] (use fit_audio), got shape {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return np.ascontiguousarray(audio, dtype=np.float32)


class VideoEncoder:
    """Streams RGB frames (and the matching audio) into a video file, one frame at a time.

    Each `write_frame` encodes its frame at once and the audio for that frame's time span, so
    memory stays flat in clip length and the file is interleaved. Same frames, audio and spec
    give byte-identical files: thread counts are fixed and no wall-clock metadata is written.

    Example:
        >>> with VideoEncoder(path, spec, audio, 48_000) as enc:
        ...     for frame in frames:
        ...         enc.write_frame(fit_frame(frame, spec.width, spec.height))
    """

    def __init__(
        self, path: Path, spec: EncodeSpec, audio: np.ndarray | None, sample_rate: int
    ) -> None:
        """Open the output container and set up the streams.

        Args:
            path: Output file; created or overwritten.
            spec: Format, size, frame rate, quality, threads and metadata.
            audio: float32 `[2, N]` samples at `sample_rate` (see `fit_audio`), or None for a
                file without audio. Audio past the last written frame is dropped and missing
                audio is silence, so the audio always spans exactly the video.
            sample_rate: Sample rate of `audio` in Hz. Opus is always 48 kHz and AAC uses this
                rate when it supports it, else 48 kHz; the audio is resampled when they differ.

        Raises:
            ValueError: If the audio shape or sample rate is invalid.
        """
        self._spec = spec
        self._audio = _check_audio(audio, sample_rate)
        self._sample_rate = sample_rate
        self._audio_pos = 0
        self._frames_written = 0
        self._closed = False
        self._reformatter = VideoReformatter()
        recipe = _recipe(spec.fmt)
        container_options = {"movflags": "+faststart"} if recipe.muxer != "webm" else {}
        self._container = av.open(
            str(path), mode="w", format=recipe.muxer, container_options=container_options
        )
        try:
            # Bitexact drops the random Matroska UIDs and the libavformat version string.
            self._container.flags |= _BITEXACT
            self._container.metadata.update(spec.metadata)
            self._video = _add_video_stream(self._container, spec)
            self._audio_stream: AudioStream | None = None
            self._resampler: AudioResampler | None = None
            if self._audio is not None:
                rate = _audio_rate(recipe, sample_rate)
                self._audio_stream = _add_audio_stream(self._container, recipe, rate)
                if rate != sample_rate:
                    self._resampler = AudioResampler(format="fltp", layout="stereo", rate=rate)
        except BaseException:
            self._closed = True
            self._container.close()
            raise

    @property
    def frames_written(self) -> int:
        """Number of video frames written so far."""
        return self._frames_written

    def write_frame(self, frame: np.ndarray) -> None:
        """Encode one frame now, followed by the audio for its time span.

        Args:
            frame: uint8 RGB `[height, width, 3]` at exactly the spec's size (see `fit_frame`).

        Raises:
            ValueError: If the frame has the wrong shape or dtype.
            RuntimeError: If the encoder is closed.
        """
        if self._closed:
            raise RuntimeError("write_frame on a closed VideoEncoder")
        expected = (self._spec.height, self._spec.width, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 {list(expected)} (use fit_frame), "
                f"got {frame.dtype} {list(frame.shape)}"
            )
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # threads=1: swscale's own pool is not worth it per frame and keeps bytes host-independent.
        yuv = self._reformatter.reformat(
            rgb,
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
            threads=1,
        )
        yuv.pts = self._frames_written
        yuv.time_base = Fraction(1, self._spec.fps)
        self._mux(self._video.encode(yuv))
        self._frames_written += 1
        self._write_audio_until(
            samples_needed(self._frames_written, self._spec.fps, self._sample_rate)
        )

    def _write_audio_until(self, end: int) -> None:
        """Encode input samples `[self._audio_pos, end)`, padding with silence past the end."""
        if self._audio is None or self._audio_stream is None or end <= self._audio_pos:
            return
        start = self._audio_pos
        chunk = self._audio[:, start:end]
        if chunk.shape[1] < end - start:
            padded = np.zeros((2, end - start), dtype=np.float32)
            padded[:, : chunk.shape[1]] = chunk
            chunk = padded
        samples = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk), format="fltp", layout="stereo"
        )
        samples.sample_rate = self._sample_rate
        samples.pts = start
        samples.time_base = Fraction(1, self._sample_rate)
        # PyAV re-chunks to the codec's frame size (AAC 1024, Opus 960) and, at the flush in
        # close(), sends a short last frame whose real length the muxer records (MP4 edit list,
        # WebM DiscardPadding), so audio ends with the video rather than a codec frame later.
        for part in self._resampler.resample(samples) if self._resampler else [samples]:
            self._mux(self._audio_stream.encode(part))
        self._audio_pos = end

    def _mux(self, packets: Sequence[Packet[Any]]) -> None:
        if packets:
            self._container.mux(packets)

    def close(self) -> None:
        """Flush the encoders and close the file. Safe to call more than once.

        Raises:
            RuntimeError: If no frame was written; no file is produced then.
        """
        self._close(require_frames=True)

    def _close(self, *, require_frames: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._mux(self._video.encode(None))
            if self._audio_stream is not None:
                if self._resampler is not None:
                    for part in self._resampler.resample(None):
                        self._mux(self._audio_stream.encode(part))
                self._mux(self._audio_stream.encode(None))
        finally:
            self._container.close()
        # libavformat opens the file with the first packet, so there is nothing on disk.
        if require_frames and self._frames_written == 0:
            raise RuntimeError("VideoEncoder closed before any frame was written; no file made")

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception, close without the no-frames check so the caller's error propagates.
        self._close(require_frames=exc_type is None)

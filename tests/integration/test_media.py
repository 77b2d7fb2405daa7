"""Media round-trips: encode synthetic clips, read them back with `probe` and the ffprobe CLI."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import ffprobe

from openimagine.media.encode import (
    FORMATS,
    EncodeSpec,
    VideoEncoder,
    content_type,
    extension,
    video_quality_setting,
)
from openimagine.media.fit import fit_audio, fit_frame, frames_needed, samples_needed
from openimagine.media.probe import decode_frames, probe

FPS = 24
SR = 48_000
NUM_FRAMES = 36  # 1.5 s
EXPECTED = {
    "MP4": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac"),
    "MOV": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac"),
    "WEBM": ("matroska,webm", "vp9", "opus"),
}
# One audio codec frame: AAC 1024 samples, Opus 20 ms.
CODEC_FRAME_S = {"aac": 1024 / SR, "opus": 0.020}
# WebM timestamps are in milliseconds, so a duration can be off by one.
TIMESTAMP_TOLERANCE_S = 0.0015


def _frames(n: int, width: int, height: int) -> list[np.ndarray]:
    """Moving gradients plus a moving grey texture, so quality makes a visible difference.

    The texture is the same in all channels: yuv420p halves chroma resolution whatever the
    quality, and colored detail would hide the difference quality makes.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        texture = 40 * np.sin((x + 2 * y + i * 4) / 5) * np.cos((x - y) / 7)
        rgb = np.stack([x * 0.2 + i * 6, y * 0.3 + i * 2, np.full_like(x, 128.0)], axis=-1)
        frames.append(np.clip(rgb % 200 + 28 + texture[..., None], 0, 255).astype(np.uint8))
    return frames


def _audio(num_samples: int, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    return 0.5 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])


def _encode(
    path: Path,
    fmt: str,
    frames: list[np.ndarray],
    *,
    quality: int = 90,
    sample_rate: int = SR,
    with_audio: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    height, width = frames[0].shape[:2]
    spec = EncodeSpec(fmt, width, height, FPS, quality, metadata=metadata or {})
    audio = None
    if with_audio:
        num_samples = samples_needed(len(frames), FPS, sample_rate)
        audio = fit_audio(_audio(num_samples, sample_rate), sample_rate, num_samples)
    with VideoEncoder(path, spec, audio, sample_rate) as encoder:
        for frame in frames:
            encoder.write_frame(frame)
        assert encoder.frames_written == len(frames)
    return path


def _ffprobe_duration(stream: dict) -> float:
    """MP4 has a stream duration; Matroska only a DURATION tag like 00:00:01.500000000."""
    if "duration" in stream:
        return float(stream["duration"])
    hours, minutes, seconds = stream["tags"]["DURATION"].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse)


@pytest.mark.parametrize("fmt", FORMATS)
def test_encoded_file_has_exact_format_size_frames_and_audio(tmp_path: Path, fmt: str) -> None:
    frames = _frames(NUM_FRAMES, 848, 480)
    path = _encode(
        tmp_path / f"clip{extension(fmt)}", fmt, frames, metadata={"comment": "seed=7 ünïcode"}
    )
    container, vcodec, acodec = EXPECTED[fmt]
    video_s = NUM_FRAMES / FPS

    info = probe(path)
    assert (info.container, info.video_codec, info.audio_codec) == (container, vcodec, acodec)
    assert (info.width, info.height, info.pix_fmt) == (848, 480, "yuv420p")
    assert info.frame_count == NUM_FRAMES
    assert info.fps == Fraction(24)
    assert info.duration_s == pytest.approx(video_s, abs=TIMESTAMP_TOLERANCE_S)
    assert (info.audio_channels, info.audio_sample_rate) == (2, SR)
    assert info.audio_duration_s is not None
    assert abs(info.audio_duration_s - video_s) <= CODEC_FRAME_S[acodec]
    assert info.metadata["comment"] == "seed=7 ünïcode"

    report = ffprobe(path)
    video = next(s for s in report["streams"] if s["codec_type"] == "video")
    audio = next(s for s in report["streams"] if s["codec_type"] == "audio")
    assert report["format"]["format_name"] == container
    assert (video["codec_name"], audio["codec_name"]) == (vcodec, acodec)
    assert (video["width"], video["height"], video["pix_fmt"]) == (848, 480, "yuv420p")
    assert video["color_space"] == "bt709"
    assert int(video["nb_read_packets"]) == NUM_FRAMES
    assert video["avg_frame_rate"] == "24/1"
    assert _ffprobe_duration(video) == pytest.approx(video_s, abs=TIMESTAMP_TOLERANCE_S)
    assert (audio["channels"], int(audio["sample_rate"])) == (2, SR)
    assert abs(_ffprobe_duration(audio) - video_s) <= CODEC_FRAME_S[acodec]
    tags = {k.lower(): v for k, v in report["format"]["tags"].items()}
    assert tags["comment"] == "seed=7 ünïcode"
    assert "creation_time" not in tags

    decoded = list(decode_frames(path))
    assert len(decoded) == NUM_FRAMES
    assert decoded[0].shape == (480, 848, 3)
    assert _psnr(decoded[10], frames[10]) > 30


@pytest.mark.parametrize(("fmt", "rate"), [("WEBM", 48_000), ("MP4", 44_100)])
def test_audio_at_44k1_is_resampled_only_for_opus(tmp_path: Path, fmt: str, rate: int) -> None:
    path = _encode(tmp_path / f"a{extension(fmt)}", fmt, _frames(24, 320, 240), sample_rate=44_100)
    info = probe(path)
    assert info.audio_sample_rate == rate
    assert info.audio_duration_s is not None
    assert abs(info.audio_duration_s - 1.0) <= 0.020
    assert int(ffprobe(path)["streams"][1]["sample_rate"]) == rate


def test_no_audio_means_no_audio_stream(tmp_path: Path) -> None:
    path = _encode(tmp_path / "silent.mp4", "MP4", _frames(12, 320, 240), with_audio=False)
    info = probe(path)
    assert info.audio_codec is None
    assert info.audio_duration_s is None
    assert info.frame_count == 12
    assert [s["codec_type"] for s in ffprobe(path)["streams"]] == ["video"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_higher_quality_gives_larger_sharper_file(tmp_path: Path, fmt: str) -> None:
    frames = _frames(12, 480, 480)
    results = []
    for quality in (30, 95):
        path = _encode(tmp_path / f"q{quality}{extension(fmt)}", fmt, frames, quality=quality)
        decoded = list(decode_frames(path))
        psnr = float(np.mean([_psnr(d, f) for d, f in zip(decoded, frames, strict=True)]))
        results.append((path.stat().st_size, psnr))
    (low_size, low_psnr), (high_size, high_psnr) = results
    assert high_size > low_size
    assert high_psnr > low_psnr + 2


def test_quality_maps_monotonically_to_crf() -> None:
    for fmt in FORMATS:
        crfs = [video_quality_setting(fmt, q) for q in range(20, 100)]
        assert all(a >= b for a, b in itertools.pairwise(crfs))
    assert (video_quality_setting("MP4", 99), video_quality_setting("MP4", 20)) == (12, 45)
    assert (video_quality_setting("WEBM", 99), video_quality_setting("WEBM", 20)) == (15, 60)
    assert video_quality_setting("MOV", 95) == video_quality_setting("MP4", 95)
    with pytest.raises(ValueError, match="quality"):
        video_quality_setting("MP4", 100)
    with pytest.raises(ValueError, match="format"):
        video_quality_setting("AVI", 50)


def test_content_types_and_extensions() -> None:
    assert [content_type(f) for f in FORMATS] == ["video/mp4", "video/webm", "video/quicktime"]
    assert [extension(f) for f in FORMATS] == [".mp4", ".webm", ".mov"]


def _encode_all_formats(out_dir: Path) -> dict[str, bytes]:
    """The fixed clip the determinism tests encode, in this process or a fresh one."""
    frames = _frames(12, 320, 240)
    meta = {"comment": "fixed"}
    return {
        fmt: _encode(out_dir / f"d{extension(fmt)}", fmt, frames, metadata=meta).read_bytes()
        for fmt in FORMATS
    }


def test_encoding_is_byte_identical_across_runs_and_processes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    first = _encode_all_formats(tmp_path / "a")
    second = _encode_all_formats(tmp_path / "b")
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "import test_media; test_media._encode_all_formats(Path(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent), str(tmp_path / "c")],
        check=True,
        timeout=60,
    )
    for fmt in FORMATS:
        assert first[fmt] == second[fmt], fmt
        assert (tmp_path / "c" / f"d{extension(fmt)}").read_bytes() == first[fmt], fmt


def _write_then_fail(encoder: VideoEncoder, frames: list[np.ndarray]) -> None:
    with encoder:
        for frame in frames:
            encoder.write_frame(frame)
        raise RuntimeError("boom")


def test_encoder_closes_file_when_the_caller_fails(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    spec = EncodeSpec("MP4", 320, 240, FPS, 80)
    enc = VideoEncoder(path, spec, fit_audio(_audio(SR), SR, SR), SR)
    with pytest.raises(RuntimeError, match="boom"):
        _write_then_fail(enc, _frames(5, 320, 240))
    enc.close()  # idempotent
    info = probe(path)
    assert info.frame_count == 5
    # Audio stops with the video rather than running on for the full second given.
    assert info.audio_duration_s is not None
    assert abs(info.audio_duration_s - 5 / FPS) <= CODEC_FRAME_S["aac"]
    with pytest.raises(RuntimeError, match="closed"):
        enc.write_frame(_frames(1, 320, 240)[0])


def test_encoder_rejects_frames_of_the_wrong_size(tmp_path: Path) -> None:
    spec = EncodeSpec("MP4", 320, 240, FPS, 80)
    with VideoEncoder(tmp_path / "x.mp4", spec, None, SR) as enc:
        with pytest.raises(ValueError, match="fit_frame"):
            enc.write_frame(np.zeros((240, 322, 3), np.uint8))
        enc.write_frame(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="even"):
        EncodeSpec("MP4", 321, 240, FPS, 80)


def test_fit_frame_crops_the_center_of_a_larger_frame() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 864, 3), dtype=np.uint8)
    out = fit_frame(frame, 848, 480)
    assert out.shape == (480, 848, 3)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, frame[:, 8:856])

    big = rng.integers(0, 256, (600, 1000, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_frame(big, 848, 480), big[60:540, 76:924])


def _gradient_frame(width: int, height: int) -> np.ndarray:
    """Red rises left to right, green top to bottom, from 10 to 250."""
    frame = np.empty((height, width, 3), np.float32)
    frame[..., 0] = np.linspace(10, 250, width)[None, :]
    frame[..., 1] = np.linspace(10, 250, height)[:, None]
    frame[..., 2] = 128
    return frame.astype(np.uint8)


def test_fit_frame_scales_a_narrower_frame_to_cover_then_crops() -> None:
    frame = _gradient_frame(832, 480)
    out = fit_frame(frame, 848, 480)
    assert out.shape == (480, 848, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    # The full width is kept (no side bars, nothing cut left or right)...
    assert abs(int(out[240, 0, 0]) - 10) <= 2
    assert abs(int(out[240, -1, 0]) - 250) <= 2
    # ...the aspect ratio too, so about 4.6 rows are cut at the top and at the bottom.
    assert 11 <= out[0, 424, 1] <= 15
    assert 245 <= out[-1, 424, 1] <= 249
    assert abs(int(out[240, 424, 1]) - 130) <= 2


def test_fit_frame_upscales_a_small_frame() -> None:
    out = fit_frame(_gradient_frame(400, 300), 848, 480)
    assert out.shape == (480, 848, 3)
    assert out.min() > 0  # no bars


def test_fit_frame_converts_float_frames() -> None:
    frame = np.array([[[0.0, 0.5, 1.0], [-0.5, 1.5, np.nan]]], dtype=np.float32)
    out = fit_frame(frame, 2, 1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[[0, 128, 255], [0, 255, 0]]])
    big = np.full((480, 864, 3), 0.25, dtype=np.float64)
    assert (fit_frame(big, 848, 480) == 64).all()


def test_fit_frame_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        fit_frame(np.zeros((480, 848), np.uint8), 848, 480)


def test_fit_audio_trims_pads_and_makes_stereo() -> None:
    stereo = np.stack([np.full(100, 0.25), np.full(100, -0.25)])
    trimmed = fit_audio(stereo, SR, 60)
    assert trimmed.shape == (2, 60)
    assert trimmed.dtype == np.float32
    np.testing.assert_array_equal(trimmed[1], -0.25)

    padded = fit_audio(stereo, SR, 150)
    assert padded.shape == (2, 150)
    np.testing.assert_array_equal(padded[:, 100:], 0)
    np.testing.assert_array_equal(padded[0, :100], 0.25)

    mono = fit_audio(np.array([[0.5, 2.0, -3.0]]), SR, 3)
    np.testing.assert_array_equal(mono, [[0.5, 1.0, -1.0], [0.5, 1.0, -1.0]])

    with pytest.raises(ValueError, match="C = 1 or 2"):
        fit_audio(np.zeros((6, 10)), SR, 10)


def test_frame_and_sample_counts_are_exact() -> None:
    assert frames_needed(15, 24) == 360
    assert frames_needed(Fraction(361, 24), 24) == 361
    assert frames_needed(Fraction(1, 48), 24) == 1  # half a frame rounds up
    assert samples_needed(361, 24, 48_000) == 722_000
    assert samples_needed(1, 24, 44_100) == 1838  # 1837.5
    assert samples_needed(2, 24, 44_100) == 3675

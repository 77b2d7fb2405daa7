"""Encoder benchmark: quality curve, throughput against the FFmpeg CLI, peak memory by length.

    python -m bench.encode

1. Quality curve: the same deterministic frames (a textured scene panning under a moving
   square) encoded by `VideoEncoder` at several `outputQuality` values, MP4 and WEBM (MOV is
   MP4's codec in another box); file size and PSNR against the encoder's input, checked for
   monotonicity.
2. Throughput: the same RGB frames and stereo audio encoded by `VideoEncoder` and by
   `/usr/bin/ffmpeg` fed from memory (frames on stdin, audio from tmpfs), with the codec,
   preset, CRF, encoder threads, color conversion and container flags encode.py uses; frames
   per second of each, sides alternating, best of 3 (`--runs`). Outputs go to tmpfs on both sides.
3. Peak memory: fresh subprocesses encode 48 and 360 frames of 1280x720 (2 s and 15 s at 24 fps)
   with frames made on the fly, twice each; VmHWM of each and the lowest-peak ratio.

The CLI links the system's libx264/libvpx, PyAV its bundled ones: the header prints both, since
a version gap there moves the ratio without any change of ours.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter
from PIL import Image

from bench.common import load_note, machine, today, verdict, vm_hwm_kib
from openimagine.media.encode import EncodeSpec, VideoEncoder, video_quality_setting
from openimagine.media.fit import samples_needed

FFMPEG = "/usr/bin/ffmpeg"
FPS = 24
SAMPLE_RATE = 48_000
# Encoder threads: encode.py's EncodeSpec default and the worker's `encode_threads` default.
THREADS = 2
# The model card's default outputQuality, i.e. what most requests encode at.
DEFAULT_QUALITY = 95
QUALITIES = (20, 35, 50, 65, 80, 95, 99)
THROUGHPUT_TARGET = 0.95
# Flat memory means 15 s peaks about where 2 s does; 1.10x leaves room for the longer audio
# array (15 s of float32 stereo is 5 MiB more) and allocator noise.
MEMORY_TARGET = 1.10
# tmpfs when there is one, so neither side waits on disk.
SHM = Path("/dev/shm")  # noqa: S108 - only a parent for mkdtemp's private dirs
SCRATCH = str(SHM) if SHM.is_dir() else None


@dataclass(frozen=True)
class Clip:
    """One encode case: format, size, frame count and quality."""

    fmt: str
    width: int
    height: int
    frames: int
    quality: int = DEFAULT_QUALITY

    def spec(self) -> EncodeSpec:
        return EncodeSpec(self.fmt, self.width, self.height, FPS, self.quality, threads=THREADS)

    @property
    def label(self) -> str:
        return f"{self.fmt} {self.width}x{self.height} {self.frames} frames q{self.quality}"


class Scene:
    """Deterministic textured frames: multi-scale smooth noise panning right, a bright square
    moving across it and a slow brightness sweep, so there is detail, motion and change for the
    encoders to spend bits on. A frame is a slice of one precomputed texture, so frames can be
    made on the fly at memcpy cost without holding the clip."""

    PAN = 3  # pixels per frame
    SWEEP = 512  # the pan goes back and forth over this many pixels

    def __init__(self, width: int, height: int) -> None:
        # The texture's size does not depend on the clip length, so the memory runs (48 vs 360
        # frames) build the very same scene and differ only in how long they encode.
        self.width, self.height = width, height
        rng = np.random.default_rng(0)
        tex_w = width + self.SWEEP
        texture = np.zeros((height, tex_w, 3), dtype=np.float32)
        # Noise at coarse to fine scales, upsampled bicubically: smooth shapes plus fine grain.
        for cell, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
            small = rng.random((height // cell + 2, tex_w // cell + 2, 3), dtype=np.float32)
            img = Image.fromarray((small * 255).astype(np.uint8))
            size = ((tex_w // cell + 2) * cell, (height // cell + 2) * cell)
            big = img.resize(size, Image.Resampling.BICUBIC)
            texture += weight * np.asarray(big, dtype=np.float32)[:height, :tex_w]
        self.texture = np.clip(texture, 0, 255).astype(np.uint8)

    def frame(self, i: int) -> np.ndarray:
        # Ping-pong pan: x runs 0..SWEEP and back, so any clip length fits the texture.
        x = abs((i * self.PAN) % (2 * self.SWEEP) - self.SWEEP)
        out = self.texture[:, x : x + self.width].copy()
        side = self.height // 5
        top = (self.height - side) // 2 + int(self.height / 4 * np.sin(i / 9))
        left = (i * 7) % (self.width - side)
        out[top : top + side, left : left + side] = (230, 60 + i % 120, 40)
        # Brightness sweep; through int16 because uint8 adds would wrap around.
        shift = int(12 * np.sin(i / 15))
        np.clip(out.astype(np.int16) + shift, 0, 255, out=out, casting="unsafe")
        return out

    def frames(self, n: int) -> Iterator[np.ndarray]:
        for i in range(n):
            yield self.frame(i)


def make_audio(frames: int) -> np.ndarray:
    """Stereo float32 [2, N] spanning exactly `frames` video frames: two tones and faint noise."""
    n = samples_needed(frames, FPS, SAMPLE_RATE)
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    # float32 throughout: no float64 temporaries to raise the memory runs' VmHWM.
    audio = np.random.default_rng(1).standard_normal((2, n), dtype=np.float32)
    audio *= 0.02
    audio[0] += 0.3 * np.sin(np.float32(2 * np.pi * 440) * t)
    audio[1] += 0.3 * np.sin(np.float32(2 * np.pi * 660) * t)
    return audio


def encode_ours(clip: Clip, frames: list[np.ndarray], audio: np.ndarray, out: Path) -> None:
    with VideoEncoder(out, clip.spec(), audio, SAMPLE_RATE) as enc:
        for frame in frames:
            enc.write_frame(frame)


def ffmpeg_cmd(clip: Clip, audio_path: Path, out: Path) -> list[str]:
    """The CLI doing what encode.py does: RGB in, BT.709 limited-range yuv420p by swscale on one
    thread (encode.py's reformat uses threads=1), the same encoder options and thread count,
    the same color tags, bitexact container and (MP4) faststart."""
    crf = str(video_quality_setting(clip.fmt, clip.quality))
    if clip.fmt == "WEBM":
        video = ["-c:v", "libvpx-vp9", "-crf", crf, "-b:v", "0", "-deadline", "good"]
        video += ["-cpu-used", "4", "-row-mt", "1"]
        audio = ["-c:a", "libopus", "-b:a", "128k"]
        mux = ["-f", "webm"]
    else:
        # encode.py sets thread_type FRAME; the CLI's default (slice+frame) also makes x264
        # use frame threads, so only the count needs setting.
        video = ["-c:v", "libx264", "-preset", "medium", "-crf", crf, "-b:v", "0"]
        video += ["-x264-params", "cpu-independent=1"]
        audio = ["-c:a", "aac", "-b:a", "192k"]
        mux = ["-movflags", "+faststart", "-f", "mp4" if clip.fmt == "MP4" else "mov"]
    return [
        *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{clip.width}x{clip.height}"),
        *("-r", str(FPS), "-i", "pipe:0"),
        *("-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "2", "-i", str(audio_path)),
        *("-map", "0:v", "-map", "1:a", "-filter_threads", "1"),
        *("-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"),
        *video,
        *("-threads", str(THREADS), "-color_range", "tv", "-color_primaries", "bt709"),
        *("-color_trc", "bt709", "-colorspace", "bt709"),
        *audio,
        *("-fflags", "+bitexact"),
        *mux,
        str(out),
    ]


def encode_ffmpeg(clip: Clip, frames: list[np.ndarray], audio_path: Path, out: Path) -> None:
    proc = subprocess.Popen(ffmpeg_cmd(clip, audio_path, out), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for frame in frames:
            proc.stdin.write(frame.data)  # the array's buffer itself: no tobytes() copy
    finally:
        proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg exited with {proc.returncode}")


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Side:
    """Best wall time and the CPU seconds of that run, for one side of a comparison."""

    wall_s: float = float("inf")
    cpu_s: float = 0.0
    size: int = 0  # output bytes: about equal on both sides if they did the same work

    def add(self, wall: float, cpu: float, out: Path) -> None:
        if wall < self.wall_s:
            self.wall_s, self.cpu_s, self.size = wall, cpu, out.stat().st_size


def throughput(clip: Clip, tmp: Path, runs: int) -> tuple[Side, Side]:
    """(ours, ffmpeg) for one clip; sides alternate which goes first, best of `runs` each."""
    scene = Scene(clip.width, clip.height)
    frames = list(scene.frames(clip.frames))  # decoded frames, held in memory for both sides
    audio = make_audio(clip.frames)
    audio_path = tmp / "audio.f32le"
    # The CLI wants interleaved samples; this file sits in tmpfs, i.e. memory.
    audio_path.write_bytes(np.ascontiguousarray(audio.T).tobytes())
    ext = ".webm" if clip.fmt == "WEBM" else ".mp4"
    ours, cli = Side(), Side()
    for run in range(runs):
        order = ("ours", "cli") if run % 2 == 0 else ("cli", "ours")
        for who in order:
            out = tmp / f"{who}{ext}"
            t0, c_self, c_kids = time.perf_counter(), self_cpu_s(), children_cpu_s()
            if who == "ours":
                encode_ours(clip, frames, audio, out)
                ours.add(time.perf_counter() - t0, self_cpu_s() - c_self, out)
            else:
                encode_ffmpeg(clip, frames, audio_path, out)
                wall = time.perf_counter() - t0
                # ffmpeg's own CPU plus what this process spent feeding the pipe.
                cpu = children_cpu_s() - c_kids + self_cpu_s() - c_self
                cli.add(wall, cpu, out)
    return ours, cli


def psnr(mse: float) -> float:
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def quality_row(scene: Scene, clip: Clip, audio: np.ndarray, out: Path) -> tuple[int, float, float]:
    """(bytes, PSNR-Y dB, PSNR-RGB dB) of one encode. PSNR-Y is against the yuv420p the encoder
    was actually given (the same BT.709 conversion encode.py does), so it measures the codec
    alone; PSNR-RGB is against the RGB input, so it also counts chroma subsampling, and levels
    off at high quality for that reason."""
    encode_ours(clip, list(scene.frames(clip.frames)), audio, out)
    ref = VideoReformatter()
    se_y = se_rgb = 0.0
    count = 0
    with av.open(str(out)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            src = scene.frame(i)
            src_yuv = ref.reformat(
                av.VideoFrame.from_ndarray(src, format="rgb24"),
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
            h = clip.height
            y_ref = src_yuv.to_ndarray()[:h].astype(np.float32)
            y_out = decoded.to_ndarray()[:h].astype(np.float32)
            se_y += float(np.mean((y_ref - y_out) ** 2))
            rgb = decoded.to_ndarray(format="rgb24").astype(np.float32)
            se_rgb += float(np.mean((rgb - src.astype(np.float32)) ** 2))
            count += 1
    if count != clip.frames:
        raise RuntimeError(f"decoded {count} frames of {clip.frames}")
    # Global PSNR: of the mean MSE over the clip, not the mean of per-frame PSNRs.
    return out.stat().st_size, psnr(se_y / count), psnr(se_rgb / count)


def quality_curve(tmp: Path) -> bool:
    width, height, frames = 848, 480, 48
    scene = Scene(width, height)
    audio = make_audio(frames)
    print(f"\n## 1. Quality curve: {width}x{height}, {frames} frames, {FPS} fps, with audio")
    print(
        f"{'format':<6} {'quality':>7} {'crf':>4} {'size KB':>9} {'PSNR-Y dB':>10} {'PSNR-RGB':>9}"
    )
    all_ok = True
    for fmt in ("MP4", "WEBM"):
        sizes: list[int] = []
        psnrs: list[float] = []
        for q in QUALITIES:
            clip = Clip(fmt, width, height, frames, q)
            size, p_y, p_rgb = quality_row(scene, clip, audio, tmp / f"q{q}.{fmt.lower()}")
            sizes.append(size)
            psnrs.append(p_y)
            crf = video_quality_setting(fmt, q)
            print(f"{fmt:<6} {q:>7} {crf:>4} {size / 1024:>9.1f} {p_y:>10.2f} {p_rgb:>9.2f}")
        # Size should strictly grow with quality; PSNR-Y should not drop.
        ok = all(a < b for a, b in itertools.pairwise(sizes)) and all(
            a <= b for a, b in itertools.pairwise(psnrs)
        )
        all_ok &= ok
        print(f"{fmt} monotonic (size up, PSNR-Y not down): {'yes' if ok else 'no'}")
    print(f"monotonic: {'yes' if all_ok else 'no'}")
    return all_ok


def throughput_table(tmp: Path, runs: int) -> list[tuple[str, float, float]]:
    print(
        f"\n## 2. Throughput vs the ffmpeg CLI (best of {runs}, sides alternating, "
        "outputs on tmpfs)"
    )
    print(f"{'case':<34} {'side':<8} {'wall s':>7} {'fps':>7} {'CPU s':>7} {'size KB':>8}")
    results = []
    for clip in (Clip("MP4", 1280, 720, 120), Clip("WEBM", 848, 480, 120)):
        ours, cli = throughput(clip, tmp, runs)
        for name, side in (("ours", ours), ("ffmpeg", cli)):
            fps = clip.frames / side.wall_s
            print(
                f"{clip.label:<34} {name:<8} {side.wall_s:>7.2f} {fps:>7.1f} "
                f"{side.cpu_s:>7.2f} {side.size / 1024:>8.0f}"
            )
        ratio = cli.wall_s / ours.wall_s  # fps ratio, ours over ffmpeg
        cpu_ratio = cli.cpu_s / ours.cpu_s if ours.cpu_s else float("nan")
        # CPU seconds are steadier than wall time on a shared machine: a second view.
        print(f"{clip.label:<34} ratio    fps {ratio:.2f}x   (CPU-time view: {cpu_ratio:.2f}x)")
        results.append((clip.fmt, ratio, cpu_ratio))
    return results


def memory_child(frames: int) -> None:
    """Fresh process: encode `frames` of 1280x720 MP4 made on the fly; print VmHWM as JSON."""
    scene = Scene(1280, 720)
    audio = make_audio(frames)
    clip = Clip("MP4", 1280, 720, frames)
    before = vm_hwm_kib()
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(dir=SCRATCH) as tmp,
        VideoEncoder(Path(tmp) / "m.mp4", clip.spec(), audio, SAMPLE_RATE) as enc,
    ):
        for frame in scene.frames(frames):  # one frame alive at a time
            enc.write_frame(frame)
    peak = vm_hwm_kib()
    print(json.dumps({"before": before, "peak": peak, "s": time.perf_counter() - t0}))


def run_child(frames: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.encode", "--memory-child", str(frames)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def memory_table(runs: int = 2) -> float:
    print(
        f"\n## 3. Peak memory (VmHWM), fresh process each, 1280x720 MP4 q{DEFAULT_QUALITY}, "
        f"frames made on the fly, lengths alternating, {runs} runs each"
    )
    print(
        f"{'clip':<22} {'run':>3} {'before MiB':>10} {'peak MiB':>9} "
        f"{'encode +MiB':>11} {'wall s':>7}"
    )
    peaks: dict[int, list[float]] = {48: [], 360: []}
    for run in range(runs):
        for frames in (48, 360) if run % 2 == 0 else (360, 48):
            r = run_child(frames)
            peaks[frames].append(r["peak"])
            label = f"{frames} frames ({Fraction(frames, FPS)} s)"
            grow = (r["peak"] - r["before"]) / 1024
            print(
                f"{label:<22} {run + 1:>3} {r['before'] / 1024:>10.0f} {r['peak'] / 1024:>9.0f} "
                f"{grow:>11.0f} {r['s']:>7.1f}"
            )
    # x264's frame threads make the peak vary by a few tens of MiB between identical runs
    # (allocator arenas, thread timing), so compare the lowest peak of each length.
    ratio = min(peaks[360]) / min(peaks[48])
    worst = max(peaks[360]) / min(peaks[48])
    print(f"peak ratio 15 s / 2 s: {ratio:.3f}x lowest vs lowest ({worst:.3f}x highest vs lowest)")
    return ratio


def library_versions() -> str:
    """libx264/libvpx the CLI links (from `ldd`) next to PyAV's bundled copies."""
    try:
        ldd = subprocess.run(["ldd", FFMPEG], capture_output=True, text=True).stdout
        ldd += subprocess.run(
            ["ldd", *Path("/usr/lib/x86_64-linux-gnu").glob("libavcodec.so.*")],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        ldd = ""
    cli = sorted(set(re.findall(r"(libx264\.so\.\d+|libvpx\.so\.\d+)", ldd)))
    libs = Path(av.__file__).parent.parent / "av.libs"
    bundled = [p.name for p in libs.glob("lib*") if p.name.startswith(("libx264", "libvpx"))]
    ours = sorted(re.sub(r"-[0-9a-f]{8}", "", name) for name in bundled)
    ver = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout.split()[2]
    codec = ".".join(map(str, av.library_versions["libavcodec"]))
    return (
        f"ffmpeg CLI {ver} ({', '.join(cli) or 'libs unknown'}); "
        f"PyAV {av.__version__} libavcodec {codec} ({', '.join(ours) or 'libs unknown'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 3 rather than 2: on a loaded 2-core VM one unlucky run per side is common (0.8x-1.8x seen).
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per side")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    t0 = time.perf_counter()
    print(f"# encoder benchmark, {today()}, {machine()}")
    print(f"# {library_versions()}")
    print(f"# encoder threads {THREADS} on both sides; {load_note()} at start")
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp_name:
        tmp = Path(tmp_name)
        monotonic = quality_curve(tmp)
        speeds = throughput_table(tmp, args.runs)
    mem = memory_table()
    print(f"\n# {load_note()} at end; {time.perf_counter() - t0:.0f} s in all")
    print("\n## Summary")
    print(
        f"quality curve monotonic (MP4, WEBM): {'yes' if monotonic else 'no'} {verdict(monotonic)}"
    )
    for fmt, ratio, cpu_ratio in speeds:
        ok = ratio >= THROUGHPUT_TARGET
        print(
            f"encode throughput vs ffmpeg ({fmt}): {ratio:.2f}x "
            f"(target >= {THROUGHPUT_TARGET}x) {verdict(ok)}; CPU-time view {cpu_ratio:.2f}x"
        )
    ok = mem <= MEMORY_TARGET
    print(
        f"encode peak RSS 15 s vs 2 s: {mem:.2f}x (flat: target <= {MEMORY_TARGET}x) {verdict(ok)}"
    )


if __name__ == "__main__":
    main()

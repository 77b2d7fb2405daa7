"""Content safety: NudeNet's detector over a clip's fitted frames, in the worker process.

`safety.mode` picks the frames: `fast` checks key frames (first, middle, last and a few evenly
spaced), `full` every frame, `none` nothing. The detector is NudeNet's ONNX model, whose
weights ship inside the `nudenet` wheel, run with onnxruntime on the CPU: nothing is
downloaded. It is loaded once per worker, on first use, so a worker that never sees a
`safety` request never pays for it. Frames are fitted and scored a few at a time, so a clip
is never held twice.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, get_args

import cv2
import numpy as np

from openimagine.config import DEFAULT_NSFW_LABELS, NudeNetLabel, SafetySettings
from openimagine.errors import OpenImagineError
from openimagine.media.fit import fit_frame

log = logging.getLogger(__name__)

# The detector's classes, in the order of its output rows 4..21, and the ones that count as
# NSFW by default: one list, in config, which also validates the settings against it.
LABELS: tuple[str, ...] = get_args(NudeNetLabel)
NSFW_LABELS: tuple[str, ...] = DEFAULT_NSFW_LABELS
BLOCKED_CODE = "nsfwContentDetected"
_SIDE = 320  # the model's input size
_BATCH = 4  # frames scored per inference call


class ContentBlocked(OpenImagineError):
    """A result was found to be NSFW and the server is set to block such results."""

    default_code = BLOCKED_CODE


@dataclass(frozen=True, slots=True)
class Finding:
    """One class over the threshold in one frame."""

    frame: int
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a check found."""

    frames_checked: int
    findings: tuple[Finding, ...]

    @property
    def nsfw(self) -> bool:
        """Whether any checked frame had an NSFW class over the threshold."""
        return bool(self.findings)


class FrameChecker(Protocol):
    """Scores RGB frames for NSFW content."""

    def check(self, frames: Iterable[tuple[int, np.ndarray]]) -> Verdict:
        """Check `(index, [H, W, 3] uint8 RGB frame)` pairs; consumes them lazily."""
        ...


def key_frames(num_frames: int, mode: str, fast_frames: int) -> list[int]:
    """Which frames `mode` checks out of `num_frames`.

    Args:
        num_frames: Frames in the output clip.
        mode: `none`, `fast` or `full` (VideoRequest.safety_mode).
        fast_frames: How many evenly spaced frames `fast` checks (at least 2); the middle
            frame is always added.

    Returns:
        Sorted, distinct frame indices.
    """
    if mode == "none" or num_frames <= 0:
        return []
    if mode == "full" or num_frames <= fast_frames:
        return list(range(num_frames))
    last = num_frames - 1
    picks = {round(i * last / (fast_frames - 1)) for i in range(fast_frames)}
    picks.add(last // 2)
    return sorted(picks)


def load_session(threads: int) -> Any:
    """NudeNet's detector as an onnxruntime CPU session, from the weights in its wheel."""
    import onnxruntime  # only workers that check content load it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    weights = importlib.resources.files("nudenet").joinpath("320n.onnx")
    with importlib.resources.as_file(weights) as path:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _blob(frame: np.ndarray) -> np.ndarray:
    """NudeNet's preprocessing: pad bottom/right to a square, resize to 320, scale to 0..1."""
    side = max(frame.shape[0], frame.shape[1])
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[: frame.shape[0], : frame.shape[1]] = frame
    small = cv2.resize(square, (_SIDE, _SIDE), interpolation=cv2.INTER_LINEAR)
    return np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0


class NudeNetChecker:
    """The real `FrameChecker`: NudeNet's ONNX detector, loaded lazily once per instance."""

    def __init__(
        self, threshold: float, labels: Sequence[str] = NSFW_LABELS, threads: int = 1
    ) -> None:
        unknown = sorted(set(labels) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown NudeNet labels: {unknown}")
        self.threshold = threshold
        self.labels = tuple(labels)
        self.threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = load_session(self.threads)
                log.info("content safety: NudeNet detector loaded")
            return self._session

    def scores(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Per-frame, per-class detection scores, `[N, len(LABELS)]`.

        A class's score is its best box's, counting each box for its top class only, as
        NudeNet's own `detect` does (before non-maximum suppression, which keeps the best).
        """
        session = self._loaded()
        out = session.run(None, {"images": np.stack([_blob(f) for f in frames])})[0]
        classes = out[:, 4:, :]  # [N, classes, boxes]
        top = classes.argmax(axis=1)
        best = classes.max(axis=1)
        own = top[:, None, :] == np.arange(len(LABELS))[None, :, None]
        return np.asarray(np.where(own, best[:, None, :], 0.0).max(axis=2))

    def check(self, frames: Iterable[tuple[int, np.ndarray]]) -> Verdict:
        """Check frames a batch at a time; see `FrameChecker.check`."""
        wanted = [LABELS.index(label) for label in self.labels]
        findings: list[Finding] = []
        checked = 0
        for batch in _batches(iter(frames), _BATCH):
            scores = self.scores([f for _, f in batch])
            checked += len(batch)
            for (index, _), row in zip(batch, scores, strict=True):
                findings.extend(
                    Finding(index, LABELS[c], float(row[c]))
                    for c in wanted
                    if row[c] >= self.threshold
                )
        return Verdict(checked, tuple(findings))


def _batches(
    items: Iterator[tuple[int, np.ndarray]], size: int
) -> Iterator[list[tuple[int, np.ndarray]]]:
    batch: list[tuple[int, np.ndarray]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True, slots=True)
class ContentSafety:
    """What a worker does with `safety`: which checker, how many fast frames, and the action
    (`flag` reports `NSFWContent: true`; `block` also withholds the result)."""

    checker: FrameChecker
    action: str = "flag"
    fast_frames: int = 7

    @property
    def blocks(self) -> bool:
        """Whether NSFW results are withheld."""
        return self.action == "block"

    def scan(
        self, frames: np.ndarray, num_frames: int, width: int, height: int, mode: str
    ) -> Verdict | None:
        """Check the frames `mode` picks, each fitted to `width`x`height` as it is encoded.

        Args:
            frames: The backend's `[F, H, W, 3]` frames (F >= num_frames).
            num_frames: Frames in the output clip.
            width: Output width.
            height: Output height.
            mode: `none`, `fast` or `full`.

        Returns:
            None for `none` (nothing checked, so `NSFWContent` is left out), else the verdict.
        """
        picks = key_frames(num_frames, mode, self.fast_frames)
        if not picks:
            return None
        verdict = self.checker.check((i, fit_frame(frames[i], width, height)) for i in picks)
        if verdict.nsfw:
            top = max(verdict.findings, key=lambda f: f.score)
            log.warning(
                "content safety: %d of %d frames flagged (top %s %.2f in frame %d)",
                len({f.frame for f in verdict.findings}),
                verdict.frames_checked,
                top.label,
                top.score,
                top.frame,
            )
        return verdict


def make_safety(settings: SafetySettings) -> ContentSafety:
    """Content checks as the settings ask; the detector itself loads on the first check."""
    checker = NudeNetChecker(
        threshold=settings.threshold, labels=settings.labels, threads=settings.threads
    )
    return ContentSafety(checker=checker, action=settings.action, fast_frames=settings.fast_frames)

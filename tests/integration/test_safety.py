"""Content safety with the real NudeNet detector: what it flags, which frames each mode checks,
and what a real JobRunner (SQLite store, blob store, encoder) does with a flagged clip.

The flagged picture is `tests/fixtures/media/nsfw_pattern.png`, abstract colour blobs found
by a black-box search against the detector (see `make_nsfw_pattern.py` next to it): no real
imagery is shipped.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from openimagine.backends.base import BackendInfo, Clip, Conditioning
from openimagine.config import NudeNetLabel, SafetySettings, WorkerSettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.domain.generation import GenerationJob, GenerationParams, Grid
from openimagine.domain.jobs import JobStatus, NewJob
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.media.fit import fit_frame
from openimagine.runware.items import job_items
from openimagine.runware.webhooks import RunwarePayloads
from openimagine.service.views import JobViews
from openimagine.store.sql import SqlStore
from openimagine.worker.runner import JobRunner
from openimagine.worker.safety import (
    BLOCKED_CODE,
    LABELS,
    NSFW_LABELS,
    ContentSafety,
    NudeNetChecker,
    Verdict,
    key_frames,
)

MEDIA = Path(__file__).parents[1] / "fixtures" / "media"
W = H = 480
FPS = 24


def _flagged() -> np.ndarray:
    return np.asarray(Image.open(MEDIA / "nsfw_pattern.png").convert("RGB"))


def _gradient() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    frame = np.stack([x * 255 // (W - 1), y * 255 // (H - 1), np.full((H, W), 128)], axis=-1)
    return frame.astype(np.uint8)


def _noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checker() -> NudeNetChecker:
    return NudeNetChecker(threshold=0.5)


def test_the_detector_flags_the_pattern_and_not_plain_pictures(checker: NudeNetChecker):
    frames = [_flagged(), _gradient(), _noise(), fit_frame(_flagged(), W, H)]
    verdict = checker.check(enumerate(frames))
    assert verdict.frames_checked == 4
    assert {f.frame for f in verdict.findings} == {0, 3}  # as shipped, and as a clip frame
    assert {f.label for f in verdict.findings} == {"FEMALE_BREAST_EXPOSED"}
    scores = checker.scores([_gradient(), _noise()])
    assert scores.shape == (2, len(LABELS)) and scores.max() < 0.2


def test_the_settings_know_every_label_and_refuse_others():
    assert set(get_args(NudeNetLabel)) == set(LABELS)
    assert SafetySettings().labels == list(NSFW_LABELS)
    with pytest.raises(ValidationError):
        SafetySettings(labels=["NOT_A_CLASS"])  # type: ignore[list-item]


def test_scores_match_nudenets_own_detect(checker: NudeNetChecker):
    from nudenet import NudeDetector

    picture = _flagged()
    # Given an RGB array, NudeNet's reader hands the model RGB, as the checker does. (From a
    # file path it swaps twice and hands it BGR, which scores this picture 0.76 instead.)
    detections = NudeDetector().detect(picture)
    best = max(detections, key=lambda d: d["score"])
    ours = checker.scores([picture])[0]
    assert LABELS[int(ours.argmax())] == best["class"]
    assert ours.max() == pytest.approx(best["score"], abs=1e-3)


def test_loading_and_checking_never_touch_the_network(monkeypatch: pytest.MonkeyPatch):
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the detector tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert NudeNetChecker(threshold=0.5).check([(0, _flagged())]).nsfw


@pytest.mark.parametrize(
    ("num_frames", "mode", "expected"),
    [
        (25, "none", []),
        (25, "fast", [0, 4, 8, 12, 16, 20, 24]),
        (24, "fast", [0, 4, 8, 11, 12, 15, 19, 23]),  # the middle frame is always in
        (5, "fast", [0, 1, 2, 3, 4]),
        (25, "full", list(range(25))),
    ],
)
def test_key_frames(num_frames: int, mode: str, expected: list[int]):
    assert key_frames(num_frames, mode, fast_frames=7) == expected


class _Counting:
    def __init__(self, inner: NudeNetChecker) -> None:
        self.inner = inner
        self.seen: list[int] = []

    def check(self, frames: Iterable[tuple[int, np.ndarray]]) -> Verdict:
        def tap() -> Iterable[tuple[int, np.ndarray]]:
            for index, frame in frames:
                assert frame.shape == (H, W, 3) and frame.dtype == np.uint8  # fitted
                self.seen.append(index)
                yield index, frame

        return self.inner.check(tap())


def test_fast_checks_key_frames_and_full_checks_every_frame(checker: NudeNetChecker):
    # Frames larger than the output, as a backend's grid gives them: each is fitted first.
    frames = np.broadcast_to(_gradient(), (26, H, W, 3))
    frames = np.pad(frames, ((0, 0), (8, 8), (16, 16), (0, 0)))
    counts = {}
    for mode in ("fast", "full"):
        counting = _Counting(checker)
        verdict = ContentSafety(counting, fast_frames=7).scan(frames, 25, W, H, mode)
        assert verdict is not None and not verdict.nsfw
        assert verdict.frames_checked == len(counting.seen)
        counts[mode] = len(counting.seen)
    assert counts == {"fast": 7, "full": 25}
    assert ContentSafety(checker).scan(frames, 25, W, H, "none") is None


# --- a real JobRunner ----------------------------------------------------------------------


class _PictureBackend:
    """Stands in for the model (the world outside the runner): every frame of a result is one
    picture, chosen by the result's seed."""

    def __init__(self, pictures: dict[int, np.ndarray]) -> None:
        self.pictures = pictures

    def load(self, device: str) -> BackendInfo:
        return BackendInfo("pictures", "none", False, 48_000, 1)

    def grid(self, width: int, height: int, num_frames: int) -> Grid:
        return Grid(width, height, num_frames)

    def generate(
        self,
        params: GenerationParams,
        on_step: object,
        should_stop: object,
        conditioning: Conditioning | None = None,
    ) -> Clip:
        grid = params.grid
        frame = fit_frame(self.pictures[params.seed], grid.width, grid.height)
        frames = np.broadcast_to(frame, (grid.num_frames, *frame.shape))
        samples = grid.num_frames * 48_000 // params.fps
        return Clip(frames=frames, audio=np.zeros((2, samples), np.float32), sample_rate=48_000)


def _spec(mode: str, n: int, webhook_url: str | None = None) -> GenerationJob:
    return GenerationJob(
        model="xai:grok-imagine@video",
        prompt="a lighthouse in a storm",
        mode=Mode.T2V,
        width=W,
        height=H,
        num_frames=FPS,
        fps=FPS,
        duration_s=1,
        source_seconds=None,
        output_format="MP4",
        output_quality=95,
        ttl_s=3600,
        number_results=n,
        include_cost=False,
        safety_mode=SafetyMode(mode),
        webhook_url=webhook_url,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=2)
    await s.migrate()
    yield s
    await s.close()


def _views(store: SqlStore, blobs_root: Path) -> JobViews:
    """How the API renders jobs: URLs signed by the API's blob store."""
    signer = UrlSigner(b"secret", "http://127.0.0.1:1")
    return JobViews(store.jobs, LocalBlobStore(blobs_root, signer))


async def _run(
    store: SqlStore,
    blobs: LocalBlobStore,
    checker: NudeNetChecker,
    *,
    action: str,
    mode: str,
    seeds: list[int],
    webhook_url: str | None = None,
) -> tuple[JobStatus, list[dict[str, object]], list[dict[str, object]]]:
    pictures = {1: _flagged(), 2: _gradient()}
    task = str(uuid.uuid4())
    await store.jobs.create(
        NewJob(
            task_uuid=task,
            owner="k1",
            task_type="videoInference",
            spec=_spec(mode, len(seeds), webhook_url),
            request_hash="h",
            max_attempts=1,
            video_uuids=[str(uuid.uuid4()) for _ in seeds],
            seeds=seeds,
            costs=[0.05] * len(seeds),
        )
    )
    claim = await store.queue.claim("w1", 30)
    assert claim is not None
    runner = JobRunner(
        queue=store.queue,
        backend=_PictureBackend(pictures),
        info=BackendInfo("pictures", "none", False, 48_000, 1),
        blobs=blobs,  # the worker's: it holds no signing secret
        config=WorkerSettings(
            lease_s=30, heartbeat_s=5, progress_interval_s=0.25, encode_threads=1
        ),
        shutdown=threading.Event(),
        safety=ContentSafety(checker, action=action, fast_frames=5),
    )
    await runner.run(claim)
    view = await _views(store, blobs.root).load(task, None)
    assert view is not None
    data, errors = job_items(view)
    return view.job.status, data, errors


def _videos(blobs: LocalBlobStore) -> list[Path]:
    return [p for p in blobs.root.rglob("*") if p.is_file()]


async def test_block_withholds_a_flagged_result_and_stores_nothing(
    store: SqlStore, tmp_path: Path, checker: NudeNetChecker
):
    blobs = LocalBlobStore(tmp_path / "blobs")
    status, data, errors = await _run(store, blobs, checker, action="block", mode="fast", seeds=[1])
    assert status is JobStatus.FAILED and data == []
    [error] = errors
    assert error["code"] == BLOCKED_CODE and error["status"] == "error"
    assert "NSFW" in str(error["message"])
    assert _videos(blobs) == []  # neither stored nor left behind as a scratch file


async def test_block_withholds_only_the_flagged_result(
    store: SqlStore, tmp_path: Path, checker: NudeNetChecker
):
    blobs = LocalBlobStore(tmp_path / "blobs")
    hook = "https://hooks.example.com/done"
    status, data, errors = await _run(
        store, blobs, checker, action="block", mode="fast", seeds=[1, 2], webhook_url=hook
    )
    assert status is JobStatus.FAILED
    [item] = data
    assert item["status"] == "success" and item["NSFWContent"] is False
    [error] = errors
    assert error["code"] == BLOCKED_CODE and error["videoUUID"] != item["videoUUID"]
    [stored] = _videos(blobs)
    assert stored.name == f"{item['videoUUID']}.mp4"
    # The webhook gets the served result, then the error for the withheld one only: the bodies
    # are rendered when sent, as the API's sender renders them.
    payloads = RunwarePayloads(_views(store, blobs.root))
    sent = await store.outbox.claim(10, 30)
    posts = [json.loads(await payloads.webhook_body(d)) for d in sent]
    assert [p.get("data", [{}])[0].get("videoUUID") for p in posts] == [item["videoUUID"], None]
    assert [e["videoUUID"] for e in posts[1]["errors"]] == [error["videoUUID"]]


async def test_flag_serves_the_result_with_nsfw_content_true(
    store: SqlStore, tmp_path: Path, checker: NudeNetChecker
):
    blobs = LocalBlobStore(tmp_path / "blobs")
    status, data, errors = await _run(store, blobs, checker, action="flag", mode="full", seeds=[1])
    assert status is JobStatus.SUCCEEDED and errors == []
    [item] = data
    assert item["NSFWContent"] is True and "videoURL" in item
    assert len(_videos(blobs)) == 1


async def test_mode_none_checks_nothing_and_reports_nothing(
    store: SqlStore, tmp_path: Path, checker: NudeNetChecker
):
    blobs = LocalBlobStore(tmp_path / "blobs")
    status, data, _ = await _run(store, blobs, checker, action="block", mode="none", seeds=[1])
    assert status is JobStatus.SUCCEEDED
    [item] = data
    assert "NSFWContent" not in item

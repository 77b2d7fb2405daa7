"""The `fixture` backend through a real server: the exact clip a request names, with audio, in
well under a second of model time, and a worker that says it serves a test pattern."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server, ffprobe, streams, t2v

FIXTURE = {"OPENIMAGINE_MODEL__BACKEND": "fixture"}


def fixture_server(data_dir: Path) -> Server:
    """A server whose worker runs the fixture backend (no checkpoint, no torch model)."""
    srv = Server(data_dir, checkpoint=data_dir / "unused", env=FIXTURE)
    srv.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = fixture_server(tmp_path_factory.mktemp("fixture") / "data").start()
    yield srv
    srv.stop()


def test_the_fixture_backend_module_imports_no_torch():
    code = "import sys, openimagine.backends.fixture; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_fixture_server_produces_the_exact_clip_with_audio(server: Server, tmp_path: Path):
    [worker] = httpx.get(server.base + "/health", timeout=5).json()["workers"]
    assert worker["weights"] == "fixture: test pattern (no model)" and worker["randomWeights"]
    task = t2v(width=848, height=480, duration=2, seed=7)
    assert server.post([task]).status_code == 200
    [item] = server.poll(task["taskUUID"], timeout=60)["data"]
    assert item["status"] == "success" and item["seed"] == 7
    info = ffprobe(server.download(item["videoURL"], tmp_path / "a.mp4"))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 848, 480)
    assert int(video["nb_read_packets"]) == 48 and video["avg_frame_rate"] == "24/1"
    assert abs(float(video["duration"]) - 2.0) < 1e-3
    assert (audio["codec_name"], audio["channels"], audio["sample_rate"]) == ("aac", 2, "48000")
    assert abs(float(audio["duration"]) - 2.0) < 0.03
    assert "fixture: test pattern" in info["format"]["tags"]["comment"]


def test_webm_in_portrait_is_exact_too(server: Server, tmp_path: Path):
    task = t2v(width=480, height=848, duration=1, outputFormat="WEBM")
    server.post([task])
    [item] = server.poll(task["taskUUID"], timeout=60)["data"]
    info = ffprobe(server.download(item["videoURL"], tmp_path / "a.webm"))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("vp9", 480, 848)
    assert int(video["nb_read_packets"]) == 24
    assert audio["codec_name"] == "opus" and abs(float(info["format"]["duration"]) - 1.0) < 0.03


def test_health_shows_the_task_each_worker_runs(tmp_path: Path):
    srv = fixture_server(tmp_path / "data")
    srv.env["OPENIMAGINE_MODEL__FIXTURE_SECONDS"] = "3"
    srv.start()
    try:
        [idle] = httpx.get(srv.base + "/health", timeout=5).json()["workers"]
        assert idle["taskUUID"] is None
        task = t2v(duration=1)
        assert srv.post([task]).status_code == 200
        running = _worker_when(srv, lambda w: w["taskUUID"] is not None)
        assert running["taskUUID"] == task["taskUUID"] and running["id"] == idle["id"]
        [item] = srv.poll(task["taskUUID"], timeout=60)["data"]
        assert item["status"] == "success"
        # The result is visible a moment before the job's row is finished.
        _worker_when(srv, lambda w: w["taskUUID"] is None)
    finally:
        srv.stop()


def _worker_when(srv: Server, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The server's one worker as /health shows it, once `wanted` holds (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        [worker] = httpx.get(srv.base + "/health", timeout=5).json()["workers"]
        if wanted(worker):
            return worker
        assert time.monotonic() < deadline, worker
        time.sleep(0.05)

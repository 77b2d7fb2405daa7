"""A worker bounded by `OPENIMAGINE_WORKERS__MAX_PIXEL_FRAMES`, through a real server: it runs
the tasks its device takes and leaves a bigger one queued (for a bigger worker), even when
the big one came first."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.test_fixture_backend import fixture_server
from tests.helpers import t2v

SMALL = 480 * 480 * 24  # 480x480, 1 s at 24 fps


def test_a_small_worker_runs_small_tasks_and_leaves_a_big_one_queued(tmp_path: Path):
    srv = fixture_server(tmp_path / "data")
    srv.env["OPENIMAGINE_WORKERS__MAX_PIXEL_FRAMES"] = str(SMALL)
    srv.env["OPENIMAGINE_WORKERS__MODELS"] = '["xai:grok-imagine@video"]'
    srv.start()
    try:
        [worker] = httpx.get(srv.base + "/health", timeout=5).json()["workers"]
        assert (worker["models"], worker["maxPixelFrames"]) == (["xai:grok-imagine@video"], SMALL)
        big, small = t2v(width=848, height=480, duration=2), t2v(width=480, height=480)
        assert srv.post([big, small]).status_code == 200
        [item] = srv.poll(small["taskUUID"], timeout=60)["data"]
        assert item["status"] == "success"
        time.sleep(1.5)  # more than the worker's poll: it looked at the queue again
        body = srv.post([{"taskType": "getResponse", "taskUUID": big["taskUUID"]}]).json()
        [waiting] = body["data"]
        assert waiting["status"] == "processing" and waiting["progress"] == 0
        assert waiting["queuePosition"] == 0  # first in the queue, for a bigger worker
    finally:
        srv.stop()

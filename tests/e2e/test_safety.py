"""`safety` end to end: the worker runs NudeNet on the tiny model's clips and reports
`NSFWContent`; a server set to block withholds what it flags, and stores nothing of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Server, t2v


def test_checked_noise_is_not_nsfw_and_unchecked_reports_nothing(server: Server):
    checked = t2v(safety={"checkContent": True, "mode": "fast"}, seed=5)
    full = t2v(safety={"mode": "full"}, seed=5)
    plain = t2v(seed=5)
    for task in (checked, full, plain):
        assert server.post([task]).status_code == 200
    for task in (checked, full):
        [item] = server.poll(task["taskUUID"])["data"]
        assert item["status"] == "success" and item["NSFWContent"] is False
        assert item["videoURL"]
    [item] = server.poll(plain["taskUUID"])["data"]
    assert item["status"] == "success" and "NSFWContent" not in item


@pytest.fixture
def blocking_server(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[Server]:
    # A threshold this low makes the detector's faint responses to noise count, so the tiny
    # model's clips are flagged: the whole block path runs against a real server.
    env = {"OPENIMAGINE_SAFETY__ACTION": "block", "OPENIMAGINE_SAFETY__THRESHOLD": "0.0001"}
    srv = Server(tmp_path / "data", checkpoint=tiny_checkpoint, env=env).start()
    yield srv
    srv.stop()


def test_block_turns_a_flagged_result_into_an_error_and_stores_no_file(blocking_server: Server):
    task = t2v(safety={"checkContent": True})
    assert blocking_server.post([task]).status_code == 200
    body = blocking_server.poll(task["taskUUID"])
    assert body.get("data", []) == []
    [error] = body["errors"]
    assert error["code"] == "nsfwContentDetected" and error["status"] == "error"
    assert error["taskUUID"] == task["taskUUID"]
    blobs = blocking_server.data_dir / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    # Unchecked requests are served as usual.
    plain = t2v()
    blocking_server.post([plain])
    [item] = blocking_server.poll(plain["taskUUID"])["data"]
    assert item["status"] == "success" and "NSFWContent" not in item

"""What a queued task reports before any worker takes it."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Server, t2v


def test_queued_items_report_their_place_in_the_queue(tmp_path: Path, tiny_checkpoint: Path):
    # No workers: nothing leaves the queue, so the places are exact.
    server = Server(tmp_path / "data", checkpoint=tiny_checkpoint, workers=0).start()
    try:
        tasks = [t2v(numberResults=2 if i == 1 else 1) for i in range(3)]
        for task in tasks:
            assert server.post([task]).status_code == 200
        places = []
        for task in tasks:
            body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
            items = body.json()["data"]
            assert {i["status"] for i in items} == {"processing"}
            assert {i["progress"] for i in items} == {0}
            places.append({i["queuePosition"] for i in items})
        assert places == [{0}, {1}, {2}]
    finally:
        server.stop()

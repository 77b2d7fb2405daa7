"""A PostgreSQL restart under a running server: no process exits, no task is lost, run twice
or charged an attempt, and idle workers hear the next submit at once (LISTEN reconnects)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.cluster import Cluster
from tests.fleet import HealthProbe
from tests.helpers import Server, t2v

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]  # the first test makes the cluster

POLL_S = 15.0  # the idle workers' fallback poll: a wake-up must come far sooner
DOWN_S = 2.0  # how long the database is away
LISTEN_BACK_S = 3.0  # more than a listener's longest pause between reconnects (2 s)
ENV = {
    "OPENIMAGINE_MODEL__BACKEND": "fixture",
    "OPENIMAGINE_MODEL__FIXTURE_SECONDS": "1",
    "OPENIMAGINE_WORKERS__POLL_S": str(POLL_S),
}


@pytest.fixture(scope="module")
def server(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`openimagine serve` on the cluster, with two workers of the fixture backend."""
    data = tmp_path_factory.mktemp("pg-restart") / "data"
    srv = Server(data, checkpoint=data / "unused", workers=2, env=ENV, store_url=pg_cluster.url())
    srv.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")
    srv.start()
    deadline = time.monotonic() + 120  # both workers registered: the PIDs compared later
    while len(srv.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    yield srv
    srv.stop()


def finished(server: Server, uuids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Each task's terminal item, polled through the API (an answer other than 200, while
    the database is away, is only waited out)."""
    deadline = time.monotonic() + timeout
    items: dict[str, dict[str, Any]] = {}
    while len(items) < len(uuids) and time.monotonic() < deadline:
        for uuid in (u for u in uuids if u not in items):
            try:
                r = server.post([{"taskType": "getResponse", "taskUUID": uuid}], timeout=40)
            except httpx.HTTPError:
                continue
            body = r.json() if r.status_code == 200 else {}
            for item in body.get("data", []) + body.get("errors", []):
                if item.get("status") in ("success", "error"):
                    items[uuid] = item
        time.sleep(0.2)
    assert len(items) == len(uuids), f"unfinished: {set(uuids) - set(items)}"
    return items


def jobs(cluster: Cluster, uuids: list[str]) -> dict[str, tuple[Any, ...]]:
    """status, attempts, created_at, started_at of each task, from the store itself."""
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT task_uuid, status, attempts, created_at, started_at FROM jobs"
            " WHERE task_uuid = ANY(%s)",
            (uuids,),
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def processes(server: Server) -> tuple[int, list[int]]:
    """The server's PID and its workers' (an exited process would show as a new PID)."""
    assert server.proc is not None and server.proc.poll() is None
    return server.proc.pid, sorted(server.worker_pids())


def stored_files(server: Server) -> Counter[str]:
    """Result files by videoUUID (each attempt at a result writes a file of its own, named
    after the videoUUID)."""
    videos = (server.data_dir / "blobs" / "videos").rglob("*.mp4")
    return Counter(Path(p).stem[:36] for p in videos)


def test_tasks_running_through_a_restart_complete_once_without_losing_an_attempt(
    pg_cluster: Cluster, server: Server
):
    before = processes(server)
    tasks = [t2v(seed=i) for i in range(1, 11)]
    uuids = [t["taskUUID"] for t in tasks]
    assert server.post(tasks).status_code == 200
    server.wait_running(uuids[0])
    running = [u for u, (status, *_) in jobs(pg_cluster, uuids).items() if status == "running"]
    assert running  # the restart cuts jobs mid-run
    with HealthProbe(server.base) as probe:
        back = pg_cluster.restart(DOWN_S)
        items = finished(server, uuids, timeout=90)
    assert {i["status"] for i in items.values()} == {"success"}
    outcome = {
        u: (status, attempts) for u, (status, attempts, *_) in jobs(pg_cluster, uuids).items()
    }
    # None ran twice, none was charged an attempt for the restart.
    assert outcome == dict.fromkeys(uuids, ("succeeded", 1))
    with pg_cluster.connect() as conn:
        results = conn.execute(
            "SELECT task_uuid, count(*) FROM results WHERE task_uuid = ANY(%s) GROUP BY 1",
            (uuids,),
        ).fetchall()
    assert dict(results) == dict.fromkeys(uuids, 1)
    files = stored_files(server)
    assert [files[i["videoUUID"]] for i in items.values()] == [1] * len(uuids)
    assert processes(server) == before  # no process exited (the pool restarts dead workers)
    assert all(status is not None for _, status in probe.answers)  # the API always answered
    after = [status for t, status in probe.answers if t > back + 2.0]
    assert after and set(after) == {200}


def test_an_idle_worker_claims_a_task_submitted_after_a_restart_at_once(
    pg_cluster: Cluster, server: Server
):
    before = processes(server)
    pg_cluster.restart(DOWN_S)
    time.sleep(LISTEN_BACK_S)  # the workers listen again (and looked at the queue then)
    task = t2v(seed=99)
    uuid = task["taskUUID"]
    response = server.post([task])  # the API's connections died with the server: made anew
    assert response.status_code == 200, response.text
    [item] = finished(server, [uuid], timeout=60).values()
    assert item["status"] == "success"
    status, attempts, created_at, started_at = jobs(pg_cluster, [uuid])[uuid]
    assert (status, attempts) == ("succeeded", 1)
    # Woken by a NOTIFY on the LISTEN made again after the restart, not by the fallback poll.
    assert started_at - created_at < POLL_S / 3
    assert processes(server) == before

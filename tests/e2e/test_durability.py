"""The store is the queue: restarts and killed workers lose nothing and duplicate nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from tests.helpers import Server, t2v

FAST_LEASE = {
    "OPENIMAGINE_WORKERS__LEASE_S": "3",
    "OPENIMAGINE_WORKERS__HEARTBEAT_S": "0.5",
}


def _db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "openimagine.db")


def _videos(server: Server) -> list[Path]:
    return sorted((server.data_dir / "blobs" / "videos").rglob("*.mp4"))


def test_queued_jobs_survive_a_server_restart_and_complete(fresh_server: Server):
    fresh_server.start()
    tasks = [t2v(seed=i) for i in range(1, 4)]
    for task in tasks:
        assert fresh_server.post([task]).status_code == 200
    fresh_server.stop()  # SIGTERM: the worker hands its job back
    with _db(fresh_server) as db:
        states = dict(db.execute("select task_uuid, status from jobs").fetchall())
    assert set(states) == {t["taskUUID"] for t in tasks}
    assert "running" not in states.values()
    fresh_server.start()
    for task in tasks:
        [item] = fresh_server.poll(task["taskUUID"])["data"]
        assert item["status"] == "success"
    assert len(_videos(fresh_server)) == 3


def test_a_worker_killed_mid_job_leaves_a_job_that_completes_exactly_once(
    tmp_path: Path, tiny_checkpoint: Path
):
    server = Server(tmp_path / "data", checkpoint=tiny_checkpoint, env=FAST_LEASE).start()
    try:
        task = t2v(numberResults=2, duration=3)
        server.post([task])
        server.wait_running(task["taskUUID"])
        [pid] = server.worker_pids()
        os.kill(pid, signal.SIGKILL)
        body = server.poll(task["taskUUID"], n=2, timeout=180)
        items = body["data"]
        assert [i["status"] for i in items] == ["success", "success"]
        assert server.worker_pids() != [pid]  # the pool restarted it
        with _db(server) as db:
            attempts, status = db.execute(
                "select attempts, status from jobs where task_uuid=?", (task["taskUUID"],)
            ).fetchone()
            n_results = db.execute("select count(*) from results").fetchone()[0]
        assert (status, n_results) == ("succeeded", 2)
        assert attempts == 2  # the killed attempt, then the one that finished
        # each attempt writes its own file (`videos/<attempt>/<videoUUID>.mp4`)
        assert {p.stem for p in _videos(server)} == {i["videoUUID"] for i in items}
    finally:
        server.stop()


def test_a_crash_of_the_whole_server_loses_nothing(tmp_path: Path, tiny_checkpoint: Path):
    server = Server(tmp_path / "data", checkpoint=tiny_checkpoint, env=FAST_LEASE).start()
    tasks = [t2v(seed=i, duration=2) for i in range(1, 3)]
    try:
        for task in tasks:
            assert server.post([task]).status_code == 200
        server.wait_running(tasks[0]["taskUUID"])
    finally:
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)  # API and worker die together, no cleanup
        server.proc.wait(10)
    restarted = Server(server.data_dir, checkpoint=tiny_checkpoint, env=FAST_LEASE)
    restarted.key = server.key
    restarted.start()
    try:
        for task in tasks:
            [item] = restarted.poll(task["taskUUID"], timeout=120)["data"]
            assert item["status"] == "success"
    finally:
        restarted.stop()

"""Fair share through a real server: a key that queued hundreds of tasks delays another key's
first task by about one task per worker, not by its whole backlog (claims go round-robin
across the keys with queued work, each key's tasks oldest first)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.helpers import Server, t2v

KEY_B = "oi_test_b_" + "0" * 24
BACKLOG = 200
# With one worker, B's task waits for the one A task running when it arrives, and at most
# one more of A's (the one already due in the round B joins). FIFO would be all 200.
MOST_AHEAD = 2


def _a_tasks_ahead(db: Path, a_owner: str, b_task: str) -> tuple[int, bool]:
    """(how many of A's tasks held the worker between B's submit and B's start, or until now
    while B waits; whether B has started), from the store's own timestamps."""
    with sqlite3.connect(db) as conn:
        created, started = conn.execute(
            "SELECT created_at, started_at FROM jobs WHERE task_uuid = ?", (b_task,)
        ).fetchone()
        until = started if started is not None else time.time()
        (ahead,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE owner = ? AND started_at IS NOT NULL AND "
            "started_at <= ? AND (finished_at IS NULL OR finished_at > ?)",
            (a_owner, until, created),
        ).fetchone()
    return int(ahead), started is not None


def _wait_success(server: Server, poll: list[dict[str, str]], key: str, timeout: float) -> bool:
    """Poll getResponse with `key` until the task succeeds (True) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = server.post(poll, key=key).json()
        assert not body.get("errors"), body
        if body["data"][0]["status"] == "success":
            return True
        time.sleep(0.1)
    return False


def test_one_keys_backlog_delays_anothers_first_task_by_about_one_task(tmp_path: Path):
    env = {"OPENIMAGINE_MODEL__BACKEND": "fixture", "OPENIMAGINE_MODEL__FIXTURE_SECONDS": "0.1"}
    server = Server(
        tmp_path / "data", checkpoint=tmp_path / "unused", env=env, args=["--api-key", KEY_B]
    )
    server.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")  # the fixture backend needs no model
    server.start()
    try:
        backlog = [t2v(positivePrompt=f"a {i}") for i in range(BACKLOG)]
        for start in range(0, BACKLOG, 100):  # key A: its backlog, 100 tasks a request
            ack = server.post(backlog[start : start + 100])
            assert ack.status_code == 200 and not ack.json().get("errors")
        b = t2v(positivePrompt="b's first")
        assert server.post([b], key=KEY_B).status_code == 200
        poll = [{"taskType": "getResponse", "taskUUID": b["taskUUID"]}]
        [item] = server.post(poll, key=KEY_B).json()["data"]
        # Already claimed (no place), or at most behind A's task in the round B joined.
        assert item.get("queuePosition", 0) <= 1, item

        db = server.data_dir / "openimagine.db"
        with sqlite3.connect(db) as conn:
            (a_owner,) = conn.execute(
                "SELECT owner FROM jobs WHERE task_uuid = ?", (backlog[0]["taskUUID"],)
            ).fetchone()
        deadline = time.monotonic() + 60
        while True:
            ahead, started = _a_tasks_ahead(db, a_owner, b["taskUUID"])
            # Fails fast under FIFO instead of waiting out the whole backlog.
            assert ahead <= MOST_AHEAD, f"B waited for {ahead} of A's tasks (FIFO order?)"
            if started or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert started, "B's task never started"
        assert _wait_success(server, poll, KEY_B, timeout=30)
        with sqlite3.connect(db) as conn:
            (a_left,) = conn.execute(
                "SELECT count(*) FROM jobs WHERE owner = ? AND status = 'queued'", (a_owner,)
            ).fetchone()
        assert a_left > BACKLOG // 2  # B did not just outlast the backlog
    finally:
        server.stop()

"""Quotas per key, through a real server: over a limit, a 429 with `Retry-After` and an error
item naming the limit, nothing stored; each key's limits its own; per-key overrides set with
`openimagine keys`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.helpers import BIN, Server, t2v


def keys(*args: str, data_dir: Path) -> str:
    done = subprocess.run(
        [str(BIN / "openimagine"), "keys", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def not_stored(server: Server, task_uuid: str, key: str | None = None) -> bool:
    poll = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}], key=key)
    return poll.json()["errors"][0]["code"] == "taskNotFound"


def test_a_full_queue_refuses_new_tasks_until_one_leaves(tmp_path: Path, tiny_checkpoint: Path):
    env = {"OPENIMAGINE_QUOTAS__MAX_QUEUED_PER_KEY": "2"}
    server = Server(tmp_path / "data", checkpoint=tiny_checkpoint, workers=0, env=env).start()
    try:
        batch = [t2v(), t2v(), t2v()]
        both = server.post(batch)
        assert both.status_code == 200  # what fits is queued; the rest is an error item
        [refused] = both.json()["errors"]
        assert (refused["code"], refused["taskUUID"]) == (
            "tooManyQueuedTasks",
            batch[2]["taskUUID"],
        )
        assert refused["retryAfter"] == 5 and refused["limit"] == 2
        assert not_stored(server, batch[2]["taskUUID"])
        alone = server.post([t2v()])
        assert alone.status_code == 429 and alone.headers["retry-after"] == "5"
        assert server.post([batch[0]]).status_code == 200  # a retried task is no new one

        other = keys("create", "--label", "other", data_dir=server.data_dir)
        assert server.post([t2v()], key=other).status_code == 200  # its own queue

        openai = httpx.post(
            server.base + "/v1/videos",
            json={"prompt": "a lighthouse", "size": "480x480", "seconds": "1"},
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=30,
        )
        assert openai.status_code == 429 and openai.headers["retry-after"] == "5"
        assert openai.json()["error"]["code"] == "too_many_queued_tasks"
    finally:
        server.stop()


def test_a_daily_budget_and_a_request_rate_per_key(tmp_path: Path, tiny_checkpoint: Path):
    data = tmp_path / "data"
    data.mkdir()
    # 480x480 for 1 s costs $0.05: the budget holds two such tasks a day.
    thrifty = keys("create", "--daily-budget-usd", "0.12", data_dir=data)
    hasty = keys("create", "--requests-per-minute", "5", data_dir=data)
    server = Server(data, checkpoint=tiny_checkpoint, workers=0).start()
    try:
        assert server.post([t2v(includeCost=True)], key=thrifty).status_code == 200
        assert server.post([t2v(includeCost=True)], key=thrifty).status_code == 200
        third = t2v(includeCost=True)
        broke = server.post([third], key=thrifty)
        assert broke.status_code == 429
        item = broke.json()["errors"][0]
        assert item["code"] == "dailyBudgetExceeded" and "$0.12" in item["message"]
        assert 0 < int(broke.headers["retry-after"]) <= 86401  # at midnight UTC
        assert not_stored(server, third["taskUUID"], key=thrifty)
        assert server.post([t2v()]).status_code == 200  # the server's own key has no budget

        ping = [{"taskType": "ping", "ping": True}]
        answers = [server.post(ping, key=hasty).status_code for _ in range(7)]
        assert answers[:5] == [200] * 5 and answers[5:] == [429, 429]
        late = server.post(ping, key=hasty)
        assert late.json()["errors"][0]["code"] == "rateLimitExceeded"
        assert 1 <= int(late.headers["retry-after"]) <= 12  # one request is due every 12 s
        assert server.post(ping).status_code == 200  # another key is not slowed

        prefix = keys("list", data_dir=data).splitlines()[-1].split("…")[0]  # the oldest key
        shown = keys("limits", prefix, "--daily-budget-usd", "0", data_dir=data)
        assert "no limit  (this key)" in shown.splitlines()[-1]
    finally:
        server.stop()

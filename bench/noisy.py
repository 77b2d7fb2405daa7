"""Noisy neighbour: one key's backlog against another key's first task.

    python -m bench.noisy [--store sqlite|postgresql] [--workers 1,4] [--tasks 1000]
                          [--fixture-seconds 0.2]

Key A queues `--tasks` tasks (480x480, 1 s, 100 a request), then key B submits one. Printed:
B's queuePosition right after its submit; B's wait in tasks, from the store's own timestamps:
A's tasks claimed after B's submit and before B's claim (fair share promises at most one per
worker) and, with them, those already running when B arrived; and B's wait in seconds, from
sending the submit to the first getResponse that reports success (polled every 50 ms).

The workers run the fixture backend (a test pattern and a tone, `--fixture-seconds` a clip,
then the real encode), so the figure is about the queue, not a model. Yardstick, from the same
server in the same run: FIFO, under which B waits for every one of A's tasks, that is
`--tasks` x the per-task time (measured first with a third key's tasks alone) / the workers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.api import store_url
from bench.common import MODEL, Proc, load_note, machine, our_server, verdict

KEY_A, KEY_B, KEY_C = "bench-key-a", "bench-key-b", "bench-key-c"
POLL_S = 0.05
BATCH = 100


def task(prompt: str) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL,
        "positivePrompt": prompt,
        "width": 480,
        "height": 480,
        "duration": 1,
    }


class Api:
    """`POST /v1` as one key or another, over one kept-alive client."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)

    def post(self, key: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.client.post("/v1", json=tasks, headers={"Authorization": f"Bearer {key}"})
        body: dict[str, Any] = r.json()
        if r.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"{r.status_code}: {str(body)[:500]}")
        return body

    def submit(self, key: str, tasks: list[dict[str, Any]]) -> None:
        for start in range(0, len(tasks), BATCH):
            self.post(key, tasks[start : start + BATCH])

    def items(self, key: str, uuids: list[str]) -> list[dict[str, Any]]:
        """The getResponse items of `uuids`, in one request."""
        polls = [{"taskType": "getResponse", "taskUUID": u} for u in uuids]
        return list(self.post(key, polls)["data"])

    def wait_success(self, key: str, uuids: list[str], t0: float, timeout: float = 600) -> float:
        """Seconds from `t0` to the first poll (every 50 ms from `t0`) in which every task of
        `uuids` reports success."""
        n = 0
        while time.perf_counter() - t0 < timeout:
            n += 1
            time.sleep(max(0.0, t0 + n * POLL_S - time.perf_counter()))
            items = self.items(key, uuids)
            if len(items) == len(uuids) and all(i["status"] == "success" for i in items):
                return time.perf_counter() - t0
        raise TimeoutError(f"{len(uuids)} tasks not done after {timeout} s")

    def close(self) -> None:
        self.client.close()


def wait_workers(proc: Proc, count: int, timeout: float = 300) -> None:
    """Until /health lists `count` ready workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            workers = httpx.get(proc.base + "/health", timeout=5).json()["workers"]
        except (httpx.HTTPError, ValueError, KeyError):  # still starting
            workers = []
        if sum(w["state"] == "ready" for w in workers) >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} workers ready: {proc.tail()}")


def per_task_s(api: Api, workers: int) -> float:
    """Seconds a task takes a worker: a third key's `4 x workers` tasks alone (after one to
    warm up), their wall time x workers / tasks."""
    warm = task("warm-up")
    api.submit(KEY_C, [warm])
    api.wait_success(KEY_C, [warm["taskUUID"]], time.perf_counter())
    tasks = [task(f"c {i}") for i in range(4 * workers)]
    t0 = time.perf_counter()
    api.submit(KEY_C, tasks)
    wall = api.wait_success(KEY_C, [str(t["taskUUID"]) for t in tasks], t0)
    return wall * workers / len(tasks)


def waits(engine: sa.Engine, a_task: str, b_task: str) -> tuple[int, int, int]:
    """(A's tasks claimed after B's submit and before B's claim, A's tasks running when B
    arrived, A's tasks still queued when B was claimed), from the jobs table."""
    with engine.connect() as conn:
        owner = conn.execute(
            sa.text("SELECT owner FROM jobs WHERE task_uuid = :t"), {"t": a_task}
        ).scalar_one()
        created, started = conn.execute(
            sa.text("SELECT created_at, started_at FROM jobs WHERE task_uuid = :t"),
            {"t": b_task},
        ).one()

        def count(where: str) -> int:
            sql = f"SELECT count(*) FROM jobs WHERE owner = :owner AND {where}"  # noqa: S608
            params = {"owner": owner, "created": created, "started": started}
            return int(conn.execute(sa.text(sql), params).scalar_one())

        after = count("started_at > :created AND started_at <= :started")
        running = count(
            "started_at <= :created AND (finished_at IS NULL OR finished_at > :created)"
        )
        queued = count("(started_at IS NULL OR started_at > :started)")
    return after, running, queued


@dataclass(frozen=True)
class Wait:
    """What B's one task went through behind A's backlog."""

    position: int | str  # B's queuePosition right after its submit
    seconds: float  # submit to success
    after: int  # A's tasks claimed after B's submit, before B's claim
    running: int  # A's tasks running when B arrived
    queued: int  # A's tasks still queued when B was claimed
    flood_s: float  # how long A's submits took


def noisy(api: Api, tasks: int, db_url: str) -> Wait:
    """A queues `tasks`, then B submits one and waits for it."""
    backlog = [task(f"a {i}") for i in range(tasks)]
    t_flood = time.perf_counter()
    api.submit(KEY_A, backlog)
    flood_s = time.perf_counter() - t_flood
    b = task("b's first")
    t0 = time.perf_counter()
    api.post(KEY_B, [b])
    [item] = api.items(KEY_B, [b["taskUUID"]])
    seconds = api.wait_success(KEY_B, [b["taskUUID"]], t0)
    engine = sa.create_engine(db_url)
    try:
        after, running, queued = waits(engine, backlog[0]["taskUUID"], b["taskUUID"])
    finally:
        engine.dispose()
    position = item.get("queuePosition", "none (already claimed)")
    return Wait(position, seconds, after, running, queued, flood_s)


def run(store: str, workers: int, tasks: int, seconds: float) -> None:
    """One server: calibrate, flood from A, then B's one task; print the lines."""
    env = {
        "OPENIMAGINE_MODEL__BACKEND": "fixture",
        "OPENIMAGINE_MODEL__FIXTURE_SECONDS": str(seconds),
        "OPENIMAGINE_WORKERS__ENCODE_THREADS": "1",
    }
    with store_url(store) as url, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = our_server(data, KEY_A, workers, env=env, store=url, more_keys=(KEY_B, KEY_C))
        api = Api(server.base)
        try:
            wait_workers(server, workers)
            per_task = per_task_s(api, workers)
            w = noisy(api, tasks, url or f"sqlite:///{data / 'openimagine.db'}")
        finally:
            api.close()
            server.stop()
    fifo_s = tasks * per_task / workers
    print(
        f"{store}, {workers} worker{'s' * (workers > 1)}: B waited for {w.after + w.running} "
        f"of A's tasks ({w.after} claimed after B's submit, {w.running} already running; "
        f"FIFO: {tasks:,}) and {w.seconds:.2f} s submit to success (FIFO: {tasks:,} x "
        f"{per_task:.3f} s / {workers} = {fifo_s:,.1f} s) -> {w.seconds / fifo_s:.4f}x of FIFO "
        f"(target: at most one task per worker claimed before B: {verdict(w.after <= workers)})",
        flush=True,
    )
    print(
        f"  B's queuePosition right after its submit: {w.position}; A's {tasks:,} queued in "
        f"{w.flood_s:.2f} s, {w.queued:,} still waiting when B was claimed; {load_note()}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", default="1,4", help="worker counts, comma-separated")
    parser.add_argument("--tasks", type=int, default=1000, help="key A's backlog")
    parser.add_argument("--fixture-seconds", type=float, default=0.2, help="a clip's time")
    args = parser.parse_args()
    print(
        f"# noisy neighbour on {machine()}; fixture backend, {args.fixture_seconds} s a clip "
        f"plus the encode, 480x480 1 s MP4",
        flush=True,
    )
    for workers in (int(n) for n in args.workers.split(",")):
        run(args.store, workers, args.tasks, args.fixture_seconds)


if __name__ == "__main__":
    main()

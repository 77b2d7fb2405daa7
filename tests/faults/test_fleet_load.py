"""A fleet under load: 1,000 tasks from 200 concurrent clients against 2 API replicas and 4
worker hosts (the fixture backend, no model time) on one PostgreSQL store and one S3 bucket.
Every task completes exactly once (one attempt, one result row, one file in the bucket), no
request gets a 5xx (or anything but 200), and no process exits.

Each client submits its 5 tasks in one request to one replica, then polls them one at a time
with `getResponse`, alternating replicas, one request every `INTERVAL_S`. The poll latency
percentiles are printed (`pytest -s`, or `-rP`), for the record and for benchmarks.
"""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster
from tests.fleet import Fleet, LoadReport, bucket_objects, result_files, run_load
from tests.helpers import t2v
from tests.s3_server import SeaweedS3

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TASKS = 1000
CLIENTS = 200
KEYS = 4  # 250 tasks each: under the default 1,000 queued per key
INTERVAL_S = 0.5  # each client's pause between requests: at most 400 requests/s in all
PREFIX = "load"


def store_rows(cluster: Cluster, uuids: list[str]) -> tuple[Counter[tuple], dict[str, list]]:
    """Jobs by (status, attempts, owner); each task's results as (status, videoUUID)."""
    with cluster.connect() as conn:
        jobs = conn.execute(
            "SELECT status, attempts, owner FROM jobs WHERE task_uuid = ANY(%s)", (uuids,)
        ).fetchall()
        results = conn.execute(
            "SELECT task_uuid, status, video_uuid FROM results WHERE task_uuid = ANY(%s)",
            (uuids,),
        ).fetchall()
    by_task: dict[str, list] = {}
    for task_uuid, status, video_uuid in results:
        by_task.setdefault(task_uuid, []).append((status, video_uuid))
    return Counter(tuple(row) for row in jobs), by_task


def report_line(report: LoadReport, cpu: dict[str, float]) -> str:
    return (
        f"\nfleet load ({TASKS} tasks, {CLIENTS} clients, 2 replicas, 4 workers): "
        f"{report.summary()}\nCPU s by process group: "
        + ", ".join(f"{name} {s:.1f}" for name, s in cpu.items())
    )


def test_a_thousand_tasks_from_two_hundred_clients_complete_exactly_once(
    pg_cluster: Cluster, weed: SeaweedS3, tmp_path: Path, record_property
):
    keys = [f"oi_load{i}_{secrets.token_hex(12)}" for i in range(KEYS)]
    fleet = Fleet(tmp_path, store_url=pg_cluster.url(), s3=weed.server, keys=keys, prefix=PREFIX)
    # outputQuality 20: the cheapest encode (x264 at CRF 45), a quarter less CPU than 95.
    tasks = [t2v(seed=i + 1, outputQuality=20) for i in range(TASKS)]
    uuids = [t["taskUUID"] for t in tasks]
    try:
        fleet.start()
        report = run_load(fleet.bases, keys, tasks, clients=CLIENTS, interval_s=INTERVAL_S)
        exited = fleet.exited()
        cpu = fleet.cpu_s()
    finally:
        fleet.stop()
    print(report_line(report, cpu))  # noqa: T201 - the run's numbers, for the record
    p50, p99 = report.percentile(report.poll_s, 0.5), report.percentile(report.poll_s, 0.99)
    record_property("poll_p50_ms", round(p50 * 1e3, 1))
    record_property("poll_p99_ms", round(p99 * 1e3, 1))
    record_property("wall_s", round(report.wall_s, 1))

    assert exited == {}  # no replica or worker host died under the load
    assert report.errors == []  # every request got an answer...
    assert set(report.statuses) == {200}, report.bad[:10]  # ...and it was a 200: no 5xx, no 429
    assert len(report.items) == TASKS, f"{TASKS - len(report.items)} tasks never finished"
    assert Counter(i["status"] for i in report.items.values()) == {"success": TASKS}

    jobs, results = store_rows(pg_cluster, uuids)
    # Each ran once (one attempt: no lease was lost), each key's tasks all there.
    assert {(status, attempts) for status, attempts, _ in jobs} == {("succeeded", 1)}
    assert sorted(Counter(owner for _, _, owner in jobs.elements()).values()) == [250] * KEYS
    assert {u: len(rows) for u, rows in results.items()} == dict.fromkeys(uuids, 1)
    videos = {u: rows[0][1] for u, rows in results.items()}
    assert {rows[0][0] for rows in results.values()} == {"success"}
    assert {u: i["videoUUID"] for u, i in report.items.items()} == videos
    # One file in the bucket per result, and no other (a second attempt would leave its own).
    files = result_files(bucket_objects(weed.client(), weed.bucket, f"{PREFIX}/videos/"))
    assert files == Counter(videos.values())

"""SIGKILL of an API replica in a fleet (2 replicas, 2 worker hosts, PostgreSQL, S3): tasks
submitted through it (running, queued, and those acknowledged just before it died) are all
visible through the other replica and complete once; the other replica answers throughout;
a webhook POST the dead replica was in the middle of is sent again by the survivor; no
other process exits."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.cluster import Cluster
from tests.fleet import Fleet, HealthProbe
from tests.helpers import Server, t2v
from tests.s3_server import SeaweedS3

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HOLD_S = 2.0  # how long the receiver keeps each webhook POST before answering
# A sender's lease on a delivery is 2 x the longer of the webhook and upload deadlines + 30 s
# (delivery/outbox.py): 36 s here, rather than 20.5 min with the defaults.
DEADLINE_S = 3
LEASE_S = 2 * DEADLINE_S + 30
ENV = {
    "OPENIMAGINE_MODEL__FIXTURE_SECONDS": "1",  # long enough to kill a replica mid-run
    "OPENIMAGINE_ALLOWED_NETWORKS": "127.0.0.1/32",
    "OPENIMAGINE_DELIVERY__WEBHOOK_DEADLINE_S": str(DEADLINE_S),
    "OPENIMAGINE_DELIVERY__UPLOAD_DEADLINE_S": str(DEADLINE_S),
}


@dataclass
class Hit:
    """One webhook POST: when it arrived, from which local port, whether it was answered."""

    at: float
    port: int
    webhook_id: str
    task_uuid: str
    answered: bool = False


@dataclass
class Receiver:
    """Takes webhook POSTs and answers 200 after `HOLD_S`, so that deliveries are in flight."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def in_flight(self, ports: set[int], fresh_s: float) -> list[Hit]:
        """Unanswered POSTs from one of `ports` that arrived in the last `fresh_s`."""
        now = time.monotonic()
        with self.lock:
            return [
                h for h in self.hits if not h.answered and h.port in ports and now - h.at < fresh_s
            ]

    def tasks(self) -> set[str]:
        with self.lock:
            return {h.task_uuid for h in self.hits}

    def tries(self, webhook_id: str) -> int:
        with self.lock:
            return sum(1 for h in self.hits if h.webhook_id == webhook_id)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hit = Hit(
                time.monotonic(),
                self.client_address[1],
                self.headers["webhook-id"],
                body["data"][0]["taskUUID"],
            )
            with rec.lock:
                rec.hits.append(hit)
            time.sleep(HOLD_S)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                return  # the sender died meanwhile
            hit.answered = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()


def tcp_ports(pid: int) -> set[int]:
    """The local ports of a process's TCP sockets (IPv4), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Submitter(threading.Thread):
    """Submits tasks to replica A, one request each, until a request gets no answer; once
    armed, it SIGKILLs A as soon as the next acknowledgement arrives."""

    def __init__(self, fleet: Fleet, hook: str) -> None:
        super().__init__(daemon=True)
        self.fleet, self.hook = fleet, hook
        self.armed = threading.Event()
        self.killed_at = 0.0
        self.acked: list[str] = []
        self.unanswered: str | None = None  # the task whose submit the replica's death cut
        self.refused: list[int] = []  # statuses other than 200

    def run(self) -> None:
        while True:
            task = t2v(webhookURL=self.hook)
            try:
                response = self.fleet.replicas[0].post([task], timeout=10)
            except httpx.HTTPError:
                self.unanswered = task["taskUUID"]
                return
            if response.status_code != 200:
                self.refused.append(response.status_code)
            else:
                self.acked.append(task["taskUUID"])
                if self.armed.is_set() and not self.killed_at:
                    self.fleet.kill_replica(0)  # right after the answer: the task must exist
                    self.killed_at = time.monotonic()
                    continue
            time.sleep(0.3)


def jobs(cluster: Cluster, uuids: list[str]) -> dict[str, tuple[str, int, int]]:
    """Each task's status, attempts, and number of result rows, from the store."""
    with cluster.connect() as conn:
        rows = conn.execute(
            "SELECT j.task_uuid, j.status, j.attempts, count(r.video_uuid) FROM jobs j"
            " LEFT JOIN results r ON r.task_uuid = j.task_uuid"
            " WHERE j.task_uuid = ANY(%s) GROUP BY 1, 2, 3",
            (uuids,),
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def undelivered(cluster: Cluster) -> list[tuple[Any, ...]]:
    """Deliveries not (yet) recorded as delivered."""
    with cluster.connect() as conn:
        return conn.execute(
            "SELECT id, status, attempts, last_error FROM deliveries WHERE status <> 'delivered'"
        ).fetchall()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def finished(server: Server, uuids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Each task's terminal item, polled through `server`."""
    deadline = time.monotonic() + timeout
    items: dict[str, dict[str, Any]] = {}
    while len(items) < len(uuids) and time.monotonic() < deadline:
        for uuid in (u for u in uuids if u not in items):
            r = server.post([{"taskType": "getResponse", "taskUUID": uuid}])
            assert r.status_code == 200, r.text  # visible: never "unknown task"
            [item] = r.json()["data"]
            if item["status"] in ("success", "error"):
                items[uuid] = item
        time.sleep(0.2)
    assert len(items) == len(uuids), f"unfinished: {set(uuids) - set(items)}"
    return items


@pytest.fixture
def fleet(pg_cluster: Cluster, weed: SeaweedS3, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(
        tmp_path, store_url=pg_cluster.url(), s3=weed.server, workers=2, prefix="kill", env=ENV
    )
    try:
        yield fleet.start()
    finally:
        fleet.stop()


def test_a_replica_killed_mid_traffic_loses_nothing(
    fleet: Fleet, pg_cluster: Cluster, receiver: Receiver
):
    a, b = fleet.replicas
    assert a.proc is not None
    batch = [t2v(webhookURL=receiver.url) for _ in range(8)]
    assert a.post(batch).status_code == 200
    submitter = Submitter(fleet, receiver.url)
    with HealthProbe(b.base) as probe:
        submitter.start()
        # Kill A while its submits are being acknowledged and it is in the middle of a webhook
        # POST (its tasks, meanwhile, run on the workers or wait in the queue).
        wait_for(lambda: len(submitter.acked) >= 3, 30, "submits acknowledged")
        held = wait_for(
            lambda: receiver.in_flight(tcp_ports(a.proc.pid), fresh_s=HOLD_S / 2),
            30,
            "replica A in the middle of a webhook POST",
        )
        submitter.armed.set()
        submitter.join(15)
        assert not submitter.is_alive() and submitter.refused == []
        assert submitter.killed_at and fleet.exited() == {"replica-0": -9}
        uuids = [t["taskUUID"] for t in batch] + submitter.acked
        at_kill = jobs(pg_cluster, uuids)
        assert {"running", "queued"} <= {status for status, _, _ in at_kill.values()}

        # Through B: every task A acknowledged is there, and completes, each once.
        items = finished(b, uuids, timeout=120)
        late = t2v(webhookURL=receiver.url)
        assert b.post([late]).status_code == 200  # B takes new work too
        items |= finished(b, [late["taskUUID"]], timeout=60)
        uuids.append(late["taskUUID"])
        assert {i["status"] for i in items.values()} == {"success"}
        assert jobs(pg_cluster, uuids) == dict.fromkeys(uuids, ("succeeded", 1, 1))
        if submitter.unanswered is not None:  # the submit after the kill: stored whole or not
            cut = jobs(pg_cluster, [submitter.unanswered])
            assert cut in ({}, {submitter.unanswered: ("succeeded", 1, 1)})
            uuids += list(cut)

        # Every webhook arrives; the one A died sending is sent again, by B, after its lease.
        by = submitter.killed_at + LEASE_S + 30
        wait_for(lambda: receiver.tasks() >= set(uuids), by - time.monotonic(), "webhooks")
        resent = lambda: all(receiver.tries(h.webhook_id) >= 2 for h in held)  # noqa: E731
        wait_for(resent, by - time.monotonic(), "the held webhooks sent again")
        wait_for(lambda: undelivered(pg_cluster) == [], 3 * HOLD_S + 10, "deliveries recorded")
    assert fleet.exited() == {"replica-0": -9}  # only A: the workers and B kept on
    assert all(status == 200 for _, status in probe.answers), "B failed a health check"
    assert any(t > submitter.killed_at + 5 for t, _ in probe.answers)

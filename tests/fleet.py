"""A fleet of real processes, as a distributed deployment runs them: API replicas
(`openimagine serve --workers 0`) and worker hosts (`openimagine worker`), each with a data
directory of its own, sharing only a PostgreSQL store and an S3 bucket; and a load driver
(`run_load`) of concurrent clients that submit and poll `getResponse` across the replicas.

Used by tests/faults/test_fleet_load.py and tests/faults/test_replica_kill.py, and by
benchmarks: nothing here imports pytest. The caller brings the store (a
PostgreSQL URL, e.g. `tests.faults.cluster.Cluster.url()`) and the bucket (`tests.s3_server`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import BIN, Server
from tests.s3_server import S3Server

TERMINAL = ("success", "error")
# The fixture backend (a test pattern, no model) with no time of its own: what a fleet test
# measures is everything around the model.
FIXTURE_ENV = {
    "OPENIMAGINE_MODEL__BACKEND": "fixture",
    "OPENIMAGINE_MODEL__FIXTURE_SECONDS": "0",
}


def fleet_secrets() -> dict[str, str]:
    """The secrets every replica must share (signed result links, webhook signatures)."""
    return {
        "OPENIMAGINE_DELIVERY__SIGNING_SECRET": secrets.token_urlsafe(32),
        "OPENIMAGINE_DELIVERY__WEBHOOK_SECRET": "whsec_"
        + base64.b64encode(secrets.token_bytes(24)).decode(),
    }


class WorkerHost:
    """`openimagine worker` on a "host" of its own: its own data directory and process group."""

    def __init__(
        self, data_dir: Path, *, store_url: str, blobs: str, count: int, env: dict[str, str]
    ) -> None:
        self.data_dir = data_dir
        self.cmd = [str(BIN / "openimagine"), "worker", "--data-dir", str(data_dir)]
        self.cmd += ["--store", store_url, "--blobs", blobs, "--count", str(count)]
        self.env = env
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerHost:
        """Start it in a session of its own (its worker processes join its process group)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL to its whole group after `timeout`."""
        _stop(self.proc, timeout)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL to the whole process group after `timeout`."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    # An exited leader may leave children (worker processes) in its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(10)


class Fleet:
    """API replicas and worker hosts on one PostgreSQL store and one S3 bucket.

    Args:
        root: A fresh directory: each process gets a data directory and a log under it.
        store_url: The shared store (PostgreSQL: `postgresql+psycopg://...`).
        s3: The shared bucket's endpoint and credentials.
        replicas: `openimagine serve --workers 0` processes, each on a port of its own.
        workers: `openimagine worker` processes (`hosts` of them, the workers spread evenly).
        hosts: How many `openimagine worker` processes carry the workers (default: one each).
        keys: The API keys every replica accepts (each is given all of them: `--api-key` makes
            the configured keys exactly these, so replicas given different ones would revoke
            each other's). Default: one fresh key.
        prefix: Where in the bucket the blobs live.
        env: More variables for every process (settings such as quotas, the model's time).
    """

    def __init__(
        self,
        root: Path,
        *,
        store_url: str,
        s3: S3Server,
        replicas: int = 2,
        workers: int = 4,
        hosts: int | None = None,
        keys: list[str] | None = None,
        prefix: str = "fleet",
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.store_url = store_url
        self.s3 = s3
        self.prefix = prefix
        self.keys = keys or ["oi_fleet_" + secrets.token_hex(16)]
        self.env = {**FIXTURE_ENV, **s3.env(prefix), **fleet_secrets(), **(env or {})}
        self.blobs = self.env.pop("OPENIMAGINE_BLOBS__URL")  # given on the command line
        self.replicas = [self._replica(i) for i in range(replicas)]
        hosts = hosts or workers
        counts = [workers // hosts + (i < workers % hosts) for i in range(hosts)]
        self.worker_count = workers
        self.hosts = [
            WorkerHost(
                root / f"worker-{i}",
                store_url=store_url,
                blobs=self.blobs,
                count=n,
                env={**os.environ, **self.env},
            )
            for i, n in enumerate(counts)
        ]

    def _replica(self, i: int) -> Server:
        data = self.root / f"replica-{i}"
        extra = [arg for key in self.keys[1:] for arg in ("--api-key", key)]
        server = Server(
            data,
            checkpoint=data / "unused",
            workers=0,
            env=self.env,
            store_url=self.store_url,
            args=["--blobs", self.blobs, *extra],
        )
        server.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")
        server.key = self.keys[0]
        return server

    @property
    def bases(self) -> list[str]:
        """Each replica's base URL."""
        return [r.base for r in self.replicas]

    def start(self, timeout: float = 120) -> Fleet:
        """Start the replicas (the first alone: it creates the schema), then the worker hosts,
        and wait until every worker is registered ready."""
        self.replicas[0].start()
        for replica in self.replicas[1:]:
            replica.start()
        for host in self.hosts:
            host.start()
        self.wait_workers(self.worker_count, timeout)
        return self

    def ready_workers(self, replica: int | None = None) -> list[str]:
        """The ids of the workers a replica's /health lists as ready (the first live one's by
        default)."""
        server = self.replicas[replica] if replica is not None else self.live_replicas()[0]
        workers = httpx.get(server.base + "/health", timeout=10).json()["workers"]
        return [w["id"] for w in workers if w["state"] == "ready"]

    def wait_workers(self, n: int, timeout: float = 120) -> None:
        """Until `n` workers are ready; a worker host that exits fails it at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if gone := self.exited():
                raise RuntimeError(f"exited before the workers were ready: {gone}")
            if len(self.ready_workers()) >= n:
                return
            time.sleep(0.3)
        logs = "\n".join(h.log.read_text()[-2000:] for h in self.hosts if h.log.exists())
        raise TimeoutError(f"fewer than {n} workers ready after {timeout} s:\n{logs}")

    def live_replicas(self) -> list[Server]:
        """The replicas whose process is running."""
        return [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]

    def kill_replica(self, i: int) -> None:
        """SIGKILL a replica's whole process group, at once, and reap it."""
        proc = self.replicas[i].proc
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def exited(self) -> dict[str, int]:
        """Each started process that has exited, with its status."""
        procs = {f"replica-{i}": r.proc for i, r in enumerate(self.replicas)}
        procs |= {f"worker-{i}": h.proc for i, h in enumerate(self.hosts)}
        return {
            name: code
            for name, proc in procs.items()
            if proc is not None and (code := proc.poll()) is not None
        }

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) each live process group has used so far: each replica,
        each worker host with its worker processes."""
        leaders = {f"replica-{i}": r.proc for i, r in enumerate(self.replicas)}
        leaders |= {f"worker-{i}": h.proc for i, h in enumerate(self.hosts)}
        groups = {p.pid: name for name, p in leaders.items() if p is not None and p.poll() is None}
        return group_cpu_s(groups)

    def stop(self) -> None:
        """Stop the worker hosts, then the replicas (never raises for one already gone)."""
        for host in self.hosts:
            host.stop()
        for replica in self.replicas:
            _stop(replica.proc, 30)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class HealthProbe:
    """GET /health every `every_s` on a thread: when each answer came, and its status (None: no
    answer within 5 s)."""

    def __init__(self, base: str, every_s: float = 0.1) -> None:
        self.url = base + "/health"
        self.every_s = every_s
        self.answers: list[tuple[float, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    status: int | None = client.get(self.url).status_code
                except httpx.HTTPError:
                    status = None
                self.answers.append((time.monotonic(), status))
                self._stop.wait(self.every_s)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


# -- load ------------------------------------------------------------------------------------


class _Connection:
    """POSTs to one replica's `/v1` over a kept-alive connection (http.client: a quarter of
    httpx's CPU a request, and the clients share the machine with the fleet)."""

    def __init__(self, base: str, timeout: float) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, key: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        try:
            return self._post(body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server may close a kept-alive connection just as it is reused: one retry on
            # a fresh connection (getResponse is idempotent, and a submit by its taskUUID).
            self.close()
            return self._post(body, headers)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.request("POST", "/v1", body, headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class LoadReport:
    """What the clients saw."""

    poll_s: list[float] = field(default_factory=list)  # each getResponse request's latency
    submit_s: list[float] = field(default_factory=list)  # each submit request's latency
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP status of every request
    errors: list[str] = field(default_factory=list)  # requests that got no HTTP answer
    bad: list[str] = field(default_factory=list)  # answers other than 200, abridged
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # each task's final item
    wall_s: float = 0.0  # from the first submit to the last task terminal

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        """The `q` quantile (nearest rank) of `values`, 0 for none."""
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def latency(self, values: list[float]) -> str:
        """`n requests p50 … p99 … max …`, in milliseconds."""
        p50, p99 = self.percentile(values, 0.5), self.percentile(values, 0.99)
        worst = max(values, default=0.0)
        return (
            f"{len(values)} p50 {p50 * 1e3:.1f} ms p99 {p99 * 1e3:.1f} ms max {worst * 1e3:.0f} ms"
        )

    def summary(self) -> str:
        """One line: tasks finished, wall time, latencies, statuses."""
        return (
            f"{len(self.items)} tasks terminal in {self.wall_s:.1f} s; "
            f"polls {self.latency(self.poll_s)}; submits {self.latency(self.submit_s)}; "
            f"statuses {dict(self.statuses)}; {len(self.errors)} without an answer"
        )


class _Client(threading.Thread):
    """One client: submits its tasks to one replica, then polls each with `getResponse`,
    alternating replicas request by request, every `interval_s`, until all are terminal."""

    def __init__(
        self,
        bases: list[str],
        key: str,
        tasks: list[dict[str, Any]],
        first: int,
        report: LoadReport,
        lock: threading.Lock,
        *,
        interval_s: float,
        deadline: float,
    ) -> None:
        super().__init__(daemon=True)
        self.conns = [_Connection(b, timeout=60) for b in bases]
        self.key, self.tasks, self.next = key, tasks, first
        self.report, self.lock = report, lock
        self.interval_s, self.deadline = interval_s, deadline

    def _post(self, payload: list[dict[str, Any]], latencies: list[float]) -> dict[str, Any]:
        conn = self.conns[self.next % len(self.conns)]
        self.next += 1
        t0 = time.perf_counter()
        try:
            status, body = conn.post(json.dumps(payload).encode(), self.key)
        except (OSError, http.client.HTTPException) as exc:
            with self.lock:
                self.report.errors.append(f"{conn.host}:{conn.port} {exc!r}")
            return {}
        elapsed = time.perf_counter() - t0
        with self.lock:
            latencies.append(elapsed)
            self.report.statuses[status] += 1
            if status != 200:
                self.report.bad.append(f"{status} {body[:300]!r}")
        return json.loads(body) if status == 200 else {}

    def run(self) -> None:
        try:
            self._submit()
            self._poll()
        finally:
            for conn in self.conns:
                conn.close()

    def _submit(self) -> None:
        while time.monotonic() < self.deadline:
            answer = self._post(self.tasks, self.report.submit_s)
            if len(answer.get("data", [])) == len(self.tasks):
                return
            time.sleep(self.interval_s)  # resent as is: the same taskUUIDs are idempotent

    def _poll(self) -> None:
        pending = [t["taskUUID"] for t in self.tasks]
        turn = 0
        while pending and time.monotonic() < self.deadline:
            time.sleep(self.interval_s)
            uuid = pending[turn % len(pending)]
            turn += 1
            answer = self._post([{"taskType": "getResponse", "taskUUID": uuid}], self.report.poll_s)
            items = answer.get("data", []) + answer.get("errors", [])
            if any(item.get("status") in TERMINAL for item in items):
                with self.lock:
                    self.report.items[uuid] = items[0]
                pending.remove(uuid)


def run_load(
    bases: list[str],
    keys: list[str],
    tasks: list[dict[str, Any]],
    *,
    clients: int,
    interval_s: float = 0.5,
    timeout_s: float = 600,
) -> LoadReport:
    """`clients` concurrent clients, each with an equal share of `tasks` and a key (round
    robin), submitting to one replica (round robin) and then polling across all of them.

    Returns when every task is terminal or after `timeout_s`; the report says which.
    """
    report, lock = LoadReport(), threading.Lock()
    deadline = time.monotonic() + timeout_s
    threads = [
        _Client(
            bases,
            keys[i % len(keys)],
            tasks[i::clients],
            i // len(keys),  # each key's clients submit to every replica in turn
            report,
            lock,
            interval_s=interval_s,
            deadline=deadline,
        )
        for i in range(clients)
    ]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    report.wall_s = time.monotonic() - t0
    return report


def group_cpu_s(groups: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system, all threads) of the live processes in each process group
    (`{pgid: name}`), from /proc (Linux)."""
    totals = dict.fromkeys(groups.values(), 0.0)
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the ")" that ends the command name: pgrp is the 3rd, utime and
            # stime the 12th and 13th.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        name = groups.get(int(fields[2]))
        if name is not None:
            totals[name] += (int(fields[11]) + int(fields[12])) / tick
    return totals


def bucket_objects(s3_client: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under `prefix` (paginated: a listing holds at most 1,000)."""
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def result_files(keys: Iterable[str]) -> Counter[str]:
    """Result files by videoUUID (`videos/<hex>/<videoUUID>.<ext>`: one per attempt)."""
    return Counter(Path(k).stem for k in keys if "/videos/" in f"/{k}")

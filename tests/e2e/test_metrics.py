"""Prometheus metrics and JSON logs of real processes: `serve` (the API and its worker child,
in multiprocess mode) and `openimagine worker` alone on its own metrics port, with the
fixture backend (no model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from openimagine.composition import add_key
from openimagine.config import Settings
from openimagine.domain.quotas import Limits
from tests.helpers import BIN, Server, free_port, t2v

FIXTURE = {"OPENIMAGINE_MODEL__BACKEND": "fixture"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fixture_server(data_dir: Path, env: dict[str, str], workers: int = 1) -> Server:
    """A server whose workers run the fixture backend (no checkpoint, no torch model)."""
    srv = Server(data_dir, checkpoint=data_dir / "unused", env={**FIXTURE, **env}, workers=workers)
    srv.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")
    return srv


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(get: Callable[[], Samples], done: Callable[[Samples], bool], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        samples = get()
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 200."""

    port: int = 0
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            rec.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield rec
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OPENIMAGINE_LOG__FORMAT": "json", "OPENIMAGINE_ALLOWED_NETWORKS": "127.0.0.1/32"}
    srv = fixture_server(tmp_path_factory.mktemp("metrics") / "data", env).start()
    yield srv
    srv.stop()


@dataclass
class Run:
    """One task run through `server`, with a webhook, and scrapes before and after."""

    task_uuid: str
    cost: float
    before: Samples
    after: Samples


DELIVERED = {"kind": "webhook", "outcome": "delivered"}


@pytest.fixture(scope="module")
def run(server: Server, receiver: Receiver) -> Run:
    url = server.base + "/metrics"
    before = scrape(url)
    task = t2v(webhookURL=f"http://127.0.0.1:{receiver.port}/hook", includeCost=True)
    assert server.post([task]).status_code == 200
    [item] = server.poll(task["taskUUID"], timeout=60)["data"]
    assert item["status"] == "success"
    delivered = value(before, "openimagine_deliveries_total", **DELIVERED)
    after = wait_for(
        lambda: scrape(url),
        lambda s: value(s, "openimagine_deliveries_total", **DELIVERED) > delivered,
    )
    return Run(task["taskUUID"], float(item["cost"]), before, after)


def delta(run: Run, name: str, **labels: str) -> float:
    return value(run.after, name, **labels) - value(run.before, name, **labels)


def test_metrics_are_served_without_a_key(server: Server):
    r = httpx.get(server.base + "/metrics", timeout=10)
    assert r.status_code == 200
    assert "# TYPE openimagine_queue_depth gauge" in r.text
    assert "openimagine_build_info{" in r.text


def test_a_finished_task_is_counted_with_its_cost(run: Run):
    assert delta(run, "openimagine_tasks_finished_total", status="succeeded") == 1
    assert delta(run, "openimagine_tasks_finished_total", status="failed") == 0
    assert run.cost > 0
    assert delta(run, "openimagine_cost_usd_total") == pytest.approx(run.cost, abs=1e-9)


def test_wait_run_generate_and_encode_seconds_have_one_observation_each(run: Run):
    assert delta(run, "openimagine_task_wait_seconds_count") == 1
    assert delta(run, "openimagine_task_run_seconds_count") == 1
    assert delta(run, "openimagine_generate_seconds_count") == 1
    assert delta(run, "openimagine_encode_seconds_count", format="mp4") == 1
    assert delta(run, "openimagine_task_run_seconds_sum") > 0
    # Every bucket of a histogram holds the observation from its upper bound on.
    assert delta(run, "openimagine_task_run_seconds_bucket", le="+Inf") == 1


def test_the_webhook_delivery_is_counted(run: Run, receiver: Receiver):
    assert receiver.bodies
    assert delta(run, "openimagine_deliveries_total", **DELIVERED) == 1
    assert delta(run, "openimagine_deliveries_total", kind="webhook", outcome="failed") == 0


def test_the_worker_childs_values_reach_the_apis_scrape(server: Server, run: Run):
    # The histograms are recorded only in the worker process, the delivery counter only in
    # the API's: both are in one scrape of the API, through the shared multiprocess dir.
    [worker_pid] = server.worker_pids()
    assert server.proc is not None and worker_pid != server.proc.pid
    shared = server.data_dir / "metrics" / f"serve-{server.port}"
    assert (shared / f"histogram_{worker_pid}.db").exists()
    assert (shared / f"counter_{worker_pid}.db").exists()
    assert (shared / f"counter_{server.proc.pid}.db").exists()
    assert value(run.after, "openimagine_task_run_seconds_count") >= 1


def test_the_store_gauges_show_an_empty_queue_and_a_ready_worker(run: Run):
    after = run.after
    for state in ("queued", "running"):
        for key_class in ("default", "override"):
            labels = {"state": state, "key_class": key_class}
            assert ("openimagine_queue_depth", frozenset(labels.items())) in after
            assert value(after, "openimagine_queue_depth", **labels) == 0
    assert value(after, "openimagine_workers", state="ready") == 1
    assert value(after, "openimagine_workers", state="busy") == 0
    assert value(after, "openimagine_deliveries_pending", kind="webhook") == 0
    assert value(after, "openimagine_store_up") == 1


def test_json_log_lines_carry_the_task_uuid(server: Server, run: Run):
    lines = server.log.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries, lines[-20:]
    for entry in entries:
        assert {"ts", "level", "logger", "message", "pid"} <= entry.keys()
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's own lines
    [worker_pid] = server.worker_pids()
    about_task = [line for line in lines if run.task_uuid in line]
    assert len(about_task) >= 2, about_task  # "running ..." and "... result 0: generated ..."
    for line in about_task:
        entry = json.loads(line)  # every line naming the task is JSON, from the worker
        assert (entry["task_uuid"], entry["pid"]) == (run.task_uuid, worker_pid)


# -- workers alone, on their own metrics port -----------------------------------------------


def start_worker(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [str(BIN / "openimagine"), "worker", "--data-dir", str(data_dir), "--count", "1"]
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env={**os.environ, **FIXTURE, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_a_standalone_worker_serves_its_own_metrics_behind_the_token(tmp_path: Path):
    data, token = tmp_path / "data", "scrape-" + uuid.uuid4().hex
    srv = fixture_server(data, {"OPENIMAGINE_METRICS__TOKEN": token}, workers=0).start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        api = srv.base + "/metrics"
        assert httpx.get(api, timeout=10).status_code == 401
        bad = httpx.get(api, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert bad.status_code == 401
        # One task of the server's key and one of a key with a limit of its own, both queued.
        limited = "oi_limited_" + uuid.uuid4().hex
        anyio.run(add_key, Settings(data_dir=data), limited, "limited", Limits(max_queued=50))
        mine, theirs = t2v(), t2v()
        assert srv.post([mine]).status_code == 200
        assert srv.post([theirs], key=limited).status_code == 200
        queued = scrape(api, token)
        assert value(queued, "openimagine_queue_depth", state="queued", key_class="default") == 1
        assert value(queued, "openimagine_queue_depth", state="queued", key_class="override") == 1
        assert value(queued, "openimagine_queue_keys", state="queued") == 2
        assert value(queued, "openimagine_workers", state="ready") == 0

        port = free_port()
        worker_env = {
            "OPENIMAGINE_WORKERS__METRICS_PORT": str(port),
            "OPENIMAGINE_METRICS__TOKEN": token,
        }
        worker = start_worker(data, worker_env, tmp_path / "worker.log")
        srv.poll(mine["taskUUID"], timeout=90)

        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        done = wait_for(
            lambda: scrape(url, token),
            lambda s: value(s, "openimagine_tasks_finished_total", status="succeeded") == 2,
            timeout=90,
        )
        poll = [{"taskType": "getResponse", "taskUUID": theirs["taskUUID"]}]
        assert srv.post(poll, key=limited).json()["data"][0]["status"] == "success"
        assert value(done, "openimagine_tasks_finished_total", status="succeeded") == 2
        assert value(done, "openimagine_task_wait_seconds_count") == 2
        assert value(done, "openimagine_task_run_seconds_count") == 2
        assert value(done, "openimagine_encode_seconds_count", format="mp4") == 2
        assert value(done, "openimagine_cost_usd_total") > 0
        assert (data / "metrics" / f"worker-{port}").is_dir()

        # The API's scrape has the store's view, not the other host's worker processes.
        drained = scrape(api, token)
        assert value(drained, "openimagine_queue_depth", state="queued", key_class="default") == 0
        assert value(drained, "openimagine_queue_keys", state="queued") == 0
        assert value(drained, "openimagine_workers", state="ready") == 1
        assert value(drained, "openimagine_task_run_seconds_count") == 0
    finally:
        if worker is not None:
            stop(worker)
        srv.stop()

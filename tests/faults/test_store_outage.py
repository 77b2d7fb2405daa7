"""Loops that use the store wait out its outages (in process, on the memory store behind a
switch that fails every call as a lost PostgreSQL connection does): a worker keeps its job,
its lease and its attempt, and neither it nor the webhook sender ever stops."""

from __future__ import annotations

import inspect
import ipaddress
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest

from openimagine.backends.fixture import FixtureBackend
from openimagine.config import DeliverySettings, Settings, WorkerSettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.outbox import OutboxSender, UploadSource
from openimagine.domain.deliveries import (
    Delivery,
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    NewDelivery,
)
from openimagine.domain.jobs import JobStatus, NewJob
from openimagine.store.errors import Backoff, lost_connection, retry_transient, transient
from openimagine.store.memory import MemoryStore
from openimagine.worker.main import Worker, WorkerParts
from tests.helpers import SMALL_T2V as SPEC

FAST = WorkerSettings(
    lease_s=5, heartbeat_s=0.05, poll_s=0.05, progress_interval_s=0.02, encode_threads=1
)
HOOK = "http://127.0.0.1:9/hook"


class Outage:
    """A part of the store whose calls fail as over a connection that PostgreSQL closed:
    every call while `down`, and the next `fail_next[name]` calls of a method; `failed`
    counts the failures by method."""

    def __init__(self, part: object) -> None:
        self._part = part
        self.down = False
        self.fail_next: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._part, name)
        if name == "wait" or not callable(attr):  # LISTEN's failures end in a plain wait
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down or self.fail_next[name] > 0:
                self.fail_next[name] -= 1
                self.failed[name] += 1
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return await attr(*args, **kwargs)

        return call


async def until(check: Callable[[], Any]) -> None:
    """Wait (10 s at most) for `check()`, or its awaited value, to be true."""
    with anyio.fail_after(10):
        while True:
            ok = check()
            if inspect.isawaitable(ok):
                ok = await ok
            if ok:
                return
            await anyio.sleep(0.01)


async def submit(store: MemoryStore) -> str:
    task = str(uuid.uuid4())
    await store.jobs.create(
        NewJob(task, "k1", "videoInference", SPEC, "h", 3, [str(uuid.uuid4())], [7], [0.05])
    )
    return task


async def status(store: MemoryStore, task: str) -> tuple[JobStatus, int]:
    found = await store.jobs.get(task, None)
    assert found is not None
    return found[0].status, found[0].attempts


def test_transient_and_lost_connection_tell_an_outage_from_a_defect():
    closed = psycopg.OperationalError("server closed the connection unexpectedly")
    assert transient(closed) and lost_connection(closed)
    assert transient(psycopg.errors.AdminShutdown()) and not transient(ValueError())
    assert not lost_connection(psycopg.errors.QueryCanceled())  # a statement timeout: ran
    assert not lost_connection(psycopg.errors.UniqueViolation())


def test_backoff_grows_to_its_bound_and_logs_an_outage_once_and_its_end(caplog):
    backoff = Backoff("x", logging.getLogger("t"), first_s=0.1, max_s=1.0)
    with caplog.at_level(logging.INFO, "t"):
        delays = [backoff.failed(OSError("down")) for _ in range(8)]
        backoff.succeeded()
    assert all(0.05 <= d <= 1.0 for d in delays) and delays[-1] >= 0.5
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert backoff.failed(OSError("again")) <= 0.1  # starts over


async def test_retry_transient_retries_outages_but_not_defects():
    calls = Counter[str]()

    async def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise psycopg.OperationalError("connection refused")
        return "ok"

    async def broken() -> None:
        calls["broken"] += 1
        raise ValueError("a bug")

    backoff = Backoff("x", logging.getLogger("t"), first_s=0.001, max_s=0.001)
    assert await retry_transient(flaky, backoff) == "ok" and calls["flaky"] == 3
    with pytest.raises(ValueError, match="a bug"):
        await retry_transient(broken, backoff)
    assert calls["broken"] == 1
    calls["flaky"] = 0
    with pytest.raises(psycopg.OperationalError):
        await retry_transient(flaky, backoff, give_up=lambda: True)


async def test_a_worker_waits_out_outages_and_keeps_its_job_and_attempt(tmp_path: Path):
    store = MemoryStore()
    queue, registry = Outage(store.queue), Outage(store.workers)
    parts = WorkerParts(
        queue=queue,  # type: ignore[arg-type]
        registry=registry,  # type: ignore[arg-type]
        backend=FixtureBackend(seconds=0.3, steps=6),
        blobs=LocalBlobStore(tmp_path / "blobs"),
        safety=None,
    )
    worker = Worker(Settings(data_dir=tmp_path / "data", workers=FAST), parts)
    running, succeeded = (JobStatus.RUNNING, 1), (JobStatus.SUCCEEDED, 1)
    queue.down = registry.down = True  # away while the worker starts
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await until(lambda: registry.failed["register"] >= 2)
        queue.down = registry.down = False
        first = await submit(store)
        await until(lambda: _is(store, first, running))
        queue.down = True  # mid-job: heartbeats, progress and the completion fail
        await until(lambda: queue.failed["complete_result"] >= 2)
        queue.down = False
        await until(lambda: _is(store, first, succeeded))
        before = queue.failed.total()
        queue.down = True  # idle: the reaper's and the claim's reads fail
        await until(lambda: queue.failed.total() >= before + 3)
        queue.down = False
        second = await submit(store)
        await until(lambda: _is(store, second, succeeded))  # one attempt each: none lost
        worker.request_stop()
    assert queue.failed["heartbeat"] >= 1 and queue.failed["progress"] >= 1


async def _is(store: MemoryStore, task: str, expected: tuple[JobStatus, int]) -> bool:
    return await status(store, task) == expected


class _Payloads:
    async def webhook_body(self, delivery: Delivery) -> bytes:
        return b'{"data": []}'

    async def upload_source(self, delivery: Delivery) -> UploadSource:
        raise AssertionError("no uploads here")


class _Receiving(OutboxSender):
    """The sender, its requests answered in process (204), and kept in `received`."""

    received: list[httpx.Request]

    def client(self) -> httpx.AsyncClient:
        received = self.received = []

        def receiver(request: httpx.Request) -> httpx.Response:
            received.append(request)
            return httpx.Response(204)

        return httpx.AsyncClient(transport=httpx.MockTransport(receiver))


async def test_the_webhook_sender_waits_out_an_outage_and_sends_once(tmp_path: Path):
    store = MemoryStore()
    task = await submit(store)
    claim = await store.queue.claim("w", 30)
    assert claim is not None
    failed = NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, HOOK)
    await store.queue.finish(task, claim.token, JobStatus.FAILED, "x", "y", [failed])
    outbox = Outage(store.outbox)
    sender = _Receiving(
        outbox,  # type: ignore[arg-type]
        _Payloads(),
        LocalBlobStore(tmp_path),
        DeliverySettings(),
        secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        allowed_networks=[ipaddress.ip_network("127.0.0.1/32")],
        poll_s=0.01,
    )

    async def delivered() -> bool:
        [row] = await store.jobs.deliveries(task)
        return row.status is DeliveryStatus.DELIVERED

    outbox.down = True  # the sender starts while the store is away
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run)
        await until(lambda: outbox.failed["claim"] >= 3)
        outbox.fail_next["done"] = 2  # the POST goes out; recording it meets the outage
        outbox.down = False
        await until(delivered)
        tg.cancel_scope.cancel()
    [row] = await store.jobs.deliveries(task)
    assert row.attempts == 1 and outbox.failed["done"] == 2
    assert len(sender.received) == 1  # recorded after the outage: not sent again

"""Receivers are isolated from each other: a receiver that answers 200 and then trickles its
body never delays another receiver's webhooks, holds at most `per_host` connections, and its
tries end at the total deadline. Real receivers on 127.0.0.1, the SQLite store."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from tests.contract.test_store import new_job

from openimagine.config import DeliverySettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.outbox import OutboxSender, UploadSource
from openimagine.domain.deliveries import (
    Delivery,
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    NewDelivery,
)
from openimagine.domain.jobs import JobStatus
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOCAL = [ipaddress.ip_network("127.0.0.1/32")]


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1: `trickle` answers 200 and then one body byte a second."""

    trickle: bool
    port: int = 0
    open_now: int = 0
    most_open: int = 0
    bodies: list[tuple[float, bytes]] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)  #: a body arrived

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            if not self.trickle:
                self.bodies.append((time.monotonic(), body))
                self.got.set()
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):  # every read arrives well within the per-read timeout
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(1.0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    slow, fast = Receiver(trickle=True), Receiver(trickle=False)
    servers = []
    for r in (slow, fast):
        server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
        r.port = server.sockets[0].getsockname()[1]
        servers.append(server)
    yield slow, fast
    for server in servers:
        server.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[TaskStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.migrate()
    yield store
    await store.close()


class Bodies:
    """Renders `{"task": ...}`; `fail` makes every render raise it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    async def webhook_body(self, delivery: Delivery) -> bytes:
        if self.fail is not None:
            raise self.fail
        return json.dumps({"task": delivery.task_uuid}).encode()

    async def upload_source(self, delivery: Delivery) -> UploadSource:
        raise AssertionError("no uploads here")


async def failed_job_with_hook(store: TaskStore, url: str) -> str:
    nj = new_job()
    await store.jobs.create(nj)
    claim = await store.queue.claim("w", 30)
    assert claim is not None
    hook = NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, url)
    await store.queue.finish(nj.task_uuid, claim.token, JobStatus.FAILED, "x", "y", [hook])
    return nj.task_uuid


def sender(store: TaskStore, tmp_path: Path, payloads: Bodies, **settings: float) -> OutboxSender:
    return OutboxSender(
        store.outbox,
        payloads,
        LocalBlobStore(tmp_path / "blobs"),
        DeliverySettings(webhook_backoff_s=30, **settings),  # type: ignore[arg-type]
        secret=SECRET,
        allowed_networks=LOCAL,
        poll_s=0.05,
    )


async def test_a_trickling_receiver_delays_no_other_receiver(
    sqlite_store: TaskStore, receivers: tuple[Receiver, Receiver], tmp_path: Path
):
    slow, fast = receivers
    slow_tasks = [
        await failed_job_with_hook(sqlite_store, f"http://127.0.0.1:{slow.port}/hook")
        for _ in range(12)
    ]
    out = sender(sqlite_store, tmp_path, Bodies(), per_host=3, in_flight=8, webhook_deadline_s=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(out.run)
        await anyio.sleep(0.5)  # the slow receiver's tries are under way
        fast_task = await failed_job_with_hook(sqlite_store, f"http://127.0.0.1:{fast.port}/hook")
        start = time.monotonic()
        with anyio.fail_after(10):
            await fast.got.wait()
        assert fast.bodies[0][0] - start < 1.0  # not behind the slow receiver's 12
        assert json.loads(fast.bodies[0][1]) == {"task": fast_task}
        await anyio.sleep(1.0)  # within the slow tries' deadline
        assert slow.most_open == 3  # its backlog held its own slots only
        await anyio.sleep(2.5)  # past it
        tg.cancel_scope.cancel()
    [fast_row] = await sqlite_store.jobs.deliveries(fast_task)
    assert fast_row.status is DeliveryStatus.DELIVERED
    timed_out = []
    for task in slow_tasks:
        [row] = await sqlite_store.jobs.deliveries(task)
        assert row.status is DeliveryStatus.PENDING  # retried later, never lost
        if row.last_error is not None:  # tried and ended (others were under way at the stop)
            timed_out.append(row.last_error)
    assert timed_out == ["no complete answer within 2 s"] * 3


async def test_an_unexpected_error_fails_only_its_delivery_with_the_reason(
    sqlite_store: TaskStore, receivers: tuple[Receiver, Receiver], tmp_path: Path
):
    _, fast = receivers
    task = await failed_job_with_hook(sqlite_store, f"http://127.0.0.1:{fast.port}/hook")
    out = sender(sqlite_store, tmp_path, Bodies(fail=KeyError("video_uuid")))
    async with out.client() as client:
        assert await out.deliver_due(client) == 1
    [row] = await sqlite_store.jobs.deliveries(task)
    assert (row.status, row.last_error) == (DeliveryStatus.FAILED, "internal error (KeyError)")
    assert fast.bodies == []

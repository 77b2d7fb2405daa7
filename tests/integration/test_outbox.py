"""The outbox sender against a receiver on the other side of an httpx transport: rendered
bodies, Standard Webhooks headers, and a failing renderer that only delays a delivery."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import uuid

import httpx
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
from openimagine.store.memory import MemoryStore

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK = "http://127.0.0.1:9/hook"


class FlakyPayloads:
    """Renders `{"task": ...}`; the first call fails as a store outage does."""

    def __init__(self) -> None:
        self.calls = 0

    async def webhook_body(self, delivery: Delivery) -> bytes:
        self.calls += 1
        if self.calls == 1:
            raise sqlite3.OperationalError("database is locked")
        return json.dumps({"task": delivery.task_uuid, "event": delivery.event.value}).encode()

    async def upload_source(self, delivery: Delivery) -> UploadSource:
        raise AssertionError("no uploads here")


async def test_a_store_outage_delays_a_delivery_and_never_loses_it(tmp_path):
    store = MemoryStore()
    nj = new_job()
    await store.jobs.create(nj)
    claim = await store.queue.claim("w", 30)
    assert claim is not None
    hook = NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, HOOK)
    await store.queue.finish(nj.task_uuid, claim.token, JobStatus.FAILED, "x", "y", [hook])
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    sender = OutboxSender(
        store.outbox,
        FlakyPayloads(),
        LocalBlobStore(tmp_path),
        DeliverySettings(webhook_backoff_s=0.01, webhook_backoff_max_s=0.01),
        secret=SECRET,
        allowed_networks=[ipaddress.ip_network("127.0.0.1/32")],
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        assert await sender.deliver_due(client) == 1
        [row] = await store.jobs.deliveries(nj.task_uuid)
        assert row.status is DeliveryStatus.PENDING
        assert row.last_error == "temporary server error (OperationalError)"
        assert received == []
        store.clock = lambda: row.next_attempt_at + 1  # type: ignore[attr-defined]
        assert await sender.deliver_due(client) == 1
    [row] = await store.jobs.deliveries(nj.task_uuid)
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
    [post] = received
    assert json.loads(post.content) == {"task": nj.task_uuid, "event": "task_failed"}
    assert post.headers["webhook-id"] == row.id and post.headers["webhook-signature"].startswith(
        "v1,"
    )
    uuid.UUID(row.id)

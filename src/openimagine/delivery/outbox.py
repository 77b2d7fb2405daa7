"""The outbox sender: webhook POSTs signed with Standard Webhooks headers, and upload PUTs,
retried with backoff.

Rows are written in the same transaction as the event they report, so a crash or restart
loses none; a sender leases due rows, so several API processes can share one store. Rows name
what happened (a result is ready, a task failed); the body is rendered here, when it is sent,
by the door that defines it (`Payloads`), so workers hold neither the URL-signing secret nor
the public URL. A try that meets a 5xx, a 429 or a network error is retried with exponential
backoff and jitter; any other answer (a 4xx, a redirect, which is never followed) and a
blocked address end the delivery as `failed` at once, with the reason kept in `last_error`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx

from openimagine.__about__ import __version__
from openimagine.config import DeliverySettings
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.delivery.webhooks import RetryPolicy, signature
from openimagine.domain.deliveries import Delivery, DeliveryKind
from openimagine.media.netguard import BlockedAddress, IPNetwork, check_url
from openimagine.store.protocols import OutboxStore

log = logging.getLogger("openimagine.outbox")


class Gone(Exception):
    """What a delivery reports no longer exists (the task was deleted, the file swept)."""


@dataclass(frozen=True, slots=True)
class UploadSource:
    """The file an upload PUTs."""

    blob_key: str
    content_type: str


class Payloads(Protocol):
    """What a delivery sends, rendered when it is sent (by the door that defines it)."""

    async def webhook_body(self, delivery: Delivery) -> bytes:
        """The JSON body of a webhook POST; `Gone` when there is nothing left to report."""
        ...

    async def upload_source(self, delivery: Delivery) -> UploadSource:
        """The file an upload PUTs; `Gone` when it no longer exists."""
        ...


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _GiveUp(Exception):
    pass


class OutboxSender:
    """Delivers due outbox rows until cancelled."""

    def __init__(
        self,
        outbox: OutboxStore,
        payloads: Payloads,
        blobs: BlobStore,
        settings: DeliverySettings,
        *,
        secret: str,
        allowed_networks: Sequence[IPNetwork],
        poll_s: float = 0.25,
        batch: int = 16,
    ) -> None:
        self.outbox = outbox
        self.payloads = payloads
        self.blobs = blobs
        self.secret = secret
        self.allowed = tuple(allowed_networks)
        self.policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
        )
        self.timeout_s = settings.webhook_timeout_s
        self.poll_s = poll_s
        self.batch = batch

    async def run(self) -> None:
        """Poll, deliver, repeat; a failing store is logged and retried, never fatal."""
        async with httpx.AsyncClient(
            timeout=self.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"openimagine/{__version__}"},
        ) as client:
            while True:
                try:
                    sent = await self.deliver_due(client)
                except Exception:
                    log.exception("outbox poll failed")
                    sent = 0
                if sent == 0:
                    await anyio.sleep(self.poll_s)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Deliver one batch of due rows concurrently; returns how many were tried."""
        # The lease outlives a try, so no second sender picks the row up mid-request.
        items = await self.outbox.claim(self.batch, lease_s=2 * self.timeout_s + 30)
        async with anyio.create_task_group() as tg:
            for item in items:
                tg.start_soon(self._deliver, client, item)
        return len(items)

    async def _deliver(self, client: httpx.AsyncClient, item: Delivery) -> None:
        try:
            try:
                await self._send(client, item)
            except (_Retry, _GiveUp):
                raise
            except Exception as exc:  # the store or the blob store failed: try again later
                log.exception("delivery %s to %s failed unexpectedly", item.id, item.url)
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        except _Retry as exc:
            if item.attempts >= self.policy.max_attempts:
                reason = f"{exc}; gave up after {item.attempts} tries"
                log.warning("delivery %s to %s failed: %s", item.id, item.url, reason)
                await self.outbox.retry(item.id, reason, None)
            else:
                next_at = time.time() + self.policy.delay(item.attempts, exc.retry_after)
                await self.outbox.retry(item.id, str(exc), next_at)
        except _GiveUp as exc:
            log.warning("delivery %s to %s failed: %s", item.id, item.url, exc)
            await self.outbox.retry(item.id, str(exc), None)
        else:
            await self.outbox.done(item.id)

    async def _send(self, client: httpx.AsyncClient, item: Delivery) -> None:
        try:
            await check_url(item.url, self.allowed)
        except BlockedAddress as exc:
            raise _GiveUp(str(exc)) from exc
        try:
            if item.kind is DeliveryKind.UPLOAD:
                response = await self._put_file(client, item)
            else:
                response = await self._post_webhook(client, item)
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        except Gone as exc:
            raise _GiveUp(str(exc)) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            raise _GiveUp(f"HTTP {status} redirect to {where} (redirects are not followed)")
        raise _GiveUp(f"HTTP {status} (not retried)")

    async def _post_webhook(self, client: httpx.AsyncClient, item: Delivery) -> httpx.Response:
        body = await self.payloads.webhook_body(item)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": item.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self.secret, item.id, timestamp, body),
        }
        return await client.post(item.url, content=body, headers=headers)

    async def _put_file(self, client: httpx.AsyncClient, item: Delivery) -> httpx.Response:
        """PUT the raw result file, streamed from the blob store, as presigned URLs expect."""
        source = await self.payloads.upload_source(item)
        opened = self.blobs.as_file(source.blob_key)
        try:
            # A remote store downloads the file here: not on the event loop.
            path = await anyio.to_thread.run_sync(opened.__enter__)
        except (BlobNotFound, FileNotFoundError) as exc:
            raise Gone("the result file is gone (its TTL expired before the upload)") from exc
        try:
            size = (await anyio.Path(path).stat()).st_size

            async def chunks() -> AsyncIterator[bytes]:
                async with await anyio.open_file(path, "rb") as f:
                    while chunk := await f.read(1 << 20):
                        yield chunk

            headers = {"Content-Type": source.content_type, "Content-Length": str(size)}
            return await client.put(item.url, content=chunks(), headers=headers)
        finally:
            await anyio.to_thread.run_sync(opened.__exit__, None, None, None)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

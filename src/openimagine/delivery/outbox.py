"""The outbox sender: webhook POSTs signed with Standard Webhooks headers, and upload PUTs,
retried with backoff.

Rows are written in the same transaction as the event they report, so a crash or restart
loses none; a sender leases due rows, so several API processes can share one store. Rows name
what happened (a result is ready, a task failed); the body is rendered here, when it is sent,
by the door that defines it (`Payloads`), so workers hold neither the URL-signing secret nor
the public URL. A try that meets a 5xx, a 429 or a network error is retried with exponential
backoff and jitter; any other answer (a 4xx, a redirect, which is never followed) and a
blocked address end the delivery as `failed` at once, with the reason kept in `last_error`.

Receivers are isolated from each other: every try has a total deadline (not only a per-read
timeout, which a receiver trickling a byte at a time never trips); at most `per_host` tries
are in flight to one destination (host and port), and a destination at its bound is left out
of claims, so its backlog never takes the slots of another; deliveries run as they are
claimed, never waiting for a batch's slowest. An error the sender did not expect fails that
delivery alone, with the reason; a store or file-system outage only delays it. The sender
never dies of the store: a failed poll is tried again with backoff (up to 5 s apart), and
a try's outcome that could not be recorded is tried again for as long as its lease lasts
(after that the delivery is sent again: at least once, with the same `webhook-id`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc
import httpx

from openimagine.__about__ import __version__
from openimagine.config import DeliverySettings
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.delivery.webhooks import RetryPolicy, signature
from openimagine.domain.deliveries import Delivery, DeliveryKind, destination
from openimagine.media.netguard import BlockedAddress, IPNetwork, check_url
from openimagine.metrics.instruments import DELIVERED, GAVE_UP, RETRIED, Metrics, instruments
from openimagine.store.errors import Backoff, retry_transient, transient
from openimagine.store.protocols import OutboxStore

log = logging.getLogger("openimagine.outbox")

_POLL_MAX_S = 5.0  # the longest pause between polls while they fail


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
        metrics: Metrics | None = None,
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
        self.deadline_s = {
            DeliveryKind.WEBHOOK: settings.webhook_deadline_s,
            DeliveryKind.UPLOAD: settings.upload_deadline_s,
        }
        self.per_host = settings.per_host
        self.in_flight = settings.in_flight
        self.poll_s = poll_s
        self.metrics = metrics if metrics is not None else instruments()
        # The lease outlives a try and a wait for its destination's slot (at most one try: a
        # claim never takes more than `per_host` for one destination), so no second sender
        # picks the row up meanwhile.
        self.lease_s = 2 * max(self.deadline_s.values()) + 30
        self._claimed: Counter[str] = Counter()  # deliveries held, by destination
        self._slots: dict[str, anyio.Semaphore] = {}  # tries under way, by destination

    async def run(self) -> None:
        """Claim and start deliveries as slots free up; a failing store is logged and
        retried with backoff, never fatal."""
        backoff = Backoff("outbox", log, first_s=self.poll_s, max_s=_POLL_MAX_S)
        async with self.client() as client, anyio.create_task_group() as tg:
            while True:
                try:
                    started = await self.dispatch(client, tg)
                except Exception as exc:
                    if not transient(exc):  # a defect: loud, and no faster than an outage
                        log.exception("outbox poll failed")
                    await anyio.sleep(backoff.failed(exc))
                    continue
                backoff.succeeded()
                if started == 0:
                    await anyio.sleep(self.poll_s)

    def client(self) -> httpx.AsyncClient:
        """The HTTP client deliveries go through."""
        return httpx.AsyncClient(
            timeout=self.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"openimagine/{__version__}"},
        )

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Deliver what is due now and wait for those tries; returns how many started."""
        async with anyio.create_task_group() as tg:
            started = await self.dispatch(client, tg)
        return started  # noqa: RET504 - once the tries end (the group waits for them)

    async def dispatch(self, client: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> int:
        """Claim due rows for the free slots and start each in `tg`; how many started."""
        free = self.in_flight - sum(self._claimed.values())
        if free <= 0:
            return 0
        busy = [host for host, n in self._claimed.items() if n >= self.per_host]
        items = await self.outbox.claim(free, self.lease_s, per_host=self.per_host, busy=busy)
        for item in items:
            self._claimed[destination(item.url)] += 1
            tg.start_soon(self._deliver, client, item)
        return len(items)

    async def _deliver(self, client: httpx.AsyncClient, item: Delivery) -> None:
        host = destination(item.url)
        slots = self._slots.setdefault(host, anyio.Semaphore(self.per_host))
        leased_until = time.monotonic() + self.lease_s
        try:
            async with slots:
                await self._try(client, item, host, leased_until)
        except Exception:  # never the sender's end: the row is tried again once its lease ends
            log.exception("delivery %s: its outcome was not recorded", item.id)
        finally:
            self._claimed[host] -= 1
            if self._claimed[host] <= 0:
                del self._claimed[host]
                self._slots.pop(host, None)

    async def _try(
        self, client: httpx.AsyncClient, item: Delivery, host: str, leased_until: float
    ) -> None:
        """One try; `host` is its destination, which logs name instead of the URL (whose query
        may carry a presigned signature); its outcome is recorded while the row is leased."""
        record = functools.partial(self._record, item.id, leased_until)
        try:
            try:
                deadline = self.deadline_s[item.kind]
                with anyio.fail_after(deadline):
                    await self._send(client, item)
            except (_Retry, _GiveUp):
                raise
            except TimeoutError as exc:
                raise _Retry(f"no complete answer within {deadline:g} s") from exc
            except Exception as exc:
                if not transient(exc):  # a defect: retrying would meet it again
                    log.exception("delivery %s failed unexpectedly", item.id)
                    raise _GiveUp(f"internal error ({type(exc).__name__})") from exc
                log.warning("delivery %s delayed: %s", item.id, exc)  # the store is away
                raise _Retry(f"temporary server error ({type(exc).__name__})") from exc
        except _Retry as exc:
            if item.attempts >= self.policy.max_attempts:
                reason = f"{exc}; gave up after {item.attempts} tries"
                log.warning("delivery %s to %s failed: %s", item.id, host, reason)
                await record(reason)
                self.metrics.delivery(item.kind, GAVE_UP)
            else:
                next_at = time.time() + self.policy.delay(item.attempts, exc.retry_after)
                await record(str(exc), next_at)
                self.metrics.delivery(item.kind, RETRIED)
        except _GiveUp as exc:
            log.warning("delivery %s to %s failed: %s", item.id, host, exc)
            await record(str(exc))
            self.metrics.delivery(item.kind, GAVE_UP)
        else:
            await record(None)
            self.metrics.delivery(item.kind, DELIVERED)

    async def _record(
        self, delivery_id: str, leased_until: float, error: str | None, next_at: float | None = None
    ) -> None:
        """A try's outcome: done (`error` None), or failed, to be tried again at `next_at` (None:
        never); again while the store is away, for as long as the row is leased."""
        if error is None:
            call = functools.partial(self.outbox.done, delivery_id)
        else:
            call = functools.partial(self.outbox.retry, delivery_id, error, next_at)
        backoff = Backoff(f"delivery {delivery_id}", log, max_s=_POLL_MAX_S)
        await retry_transient(call, backoff, give_up=lambda: time.monotonic() > leased_until)

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

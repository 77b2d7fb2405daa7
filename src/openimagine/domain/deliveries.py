"""Deliveries: what the outbox sends after a result or a failure is committed."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit


class DeliveryKind(enum.StrEnum):
    """How a delivery reaches the user."""

    WEBHOOK = "webhook"  #: a POST of the result's item (or the errors) to `webhookURL`
    UPLOAD = "upload"  #: a PUT of the result's file to `uploadEndpoint`


class DeliveryEvent(enum.StrEnum):
    """What happened, as the worker recorded it; the body is rendered when it is sent."""

    RESULT_READY = "result_ready"  #: one result succeeded (`video_uuid` names it)
    TASK_FAILED = "task_failed"  #: the job ended with results in error


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  #: given up; `last_error` says why


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to record in the same transaction as the event it reports."""

    kind: DeliveryKind
    event: DeliveryEvent
    url: str
    video_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stored delivery."""

    id: str
    task_uuid: str
    kind: DeliveryKind
    event: DeliveryEvent
    url: str
    video_uuid: str | None
    status: DeliveryStatus
    attempts: int  #: tries made so far, counting the one a claim starts
    last_error: str | None
    next_attempt_at: float
    created_at: float
    delivered_at: float | None


def destination(url: str) -> str:
    """The receiver a URL reaches, `host:port` (lower case): deliveries are bounded and
    isolated per destination, so a slow receiver only ever holds its own slots."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # e.g. an impossible port: the sender refuses it, alone
        return url[:255]
    return f"{(parts.hostname or '').lower()}:{port}"[:255]


def failure_webhook(webhook_url: str | None) -> list[NewDelivery]:
    """The webhook reporting a task that failed or was canceled without its worker (a cancel
    while queued, the reaper), when the task asked for webhooks."""
    if webhook_url is None:
        return []
    return [NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, webhook_url)]

"""Core rows ↔ domain records, for the tables beside jobs and results (those are mapped by
position in `raw`)."""

from __future__ import annotations

from typing import Any

import orjson

from openimagine.domain.deliveries import Delivery, DeliveryEvent, DeliveryKind, DeliveryStatus
from openimagine.domain.jobs import Capability
from openimagine.domain.records import MediaItem, MediaKind, WorkerInfo, WorkerState


def to_media(row: Any) -> MediaItem:
    """A `media` row as a `MediaItem`."""
    m = dict(row._mapping)
    m["kind"] = MediaKind(m["kind"])
    return MediaItem(**m)


def to_worker(row: Any) -> WorkerInfo:
    """A `workers` row as a `WorkerInfo`."""
    m = dict(row._mapping)
    m["state"] = WorkerState(m["state"])
    m["random_weights"] = bool(m["random_weights"])
    models = tuple(str(name) for name in orjson.loads(m.pop("models")))
    m["capability"] = Capability(models, int(m.pop("max_pixel_frames")))
    return WorkerInfo(**m)


def worker_fields(info: WorkerInfo) -> dict[str, Any]:
    """A `WorkerInfo` as `workers` column values (its task is read from the jobs, never
    stored)."""
    row = fields(info)
    del row["task_uuid"]
    capability = row.pop("capability")
    row["models"] = orjson.dumps(list(capability.models)).decode()
    row["max_pixel_frames"] = capability.max_pixel_frames
    return row


def to_delivery(row: Any) -> Delivery:
    """A `deliveries` row as a `Delivery`."""
    m = row._mapping
    return Delivery(
        id=m["id"],
        task_uuid=m["task_uuid"],
        kind=DeliveryKind(m["kind"]),
        event=DeliveryEvent(m["event"]),
        url=m["url"],
        video_uuid=m["video_uuid"],
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        last_error=m["last_error"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
    )


def fields(obj: Any) -> dict[str, Any]:
    """A slotted dataclass as column values (enums as their values)."""
    return {name: getattr(obj, name) for name in obj.__slots__}

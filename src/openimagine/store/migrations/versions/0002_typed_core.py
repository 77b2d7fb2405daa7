"""Typed deliveries and resolved job specs.

- `webhook_outbox` becomes `deliveries`: rows name what happened (`event`: result_ready or
  task_failed, and the `video_uuid` a result_ready names) instead of carrying a rendered
  body, which the sender now renders when it sends. Pending rows are converted.
- `jobs.request` holds the resolved `GenerationJob` (inputs as plain blob keys, the exact
  frame count always set) instead of the request as validated.
- `ix_jobs_owner` serves the per-key listing of `/v1/videos`.
- The idempotency hash of text-to-video jobs is recomputed the way submits now compute it, so
  a client retrying a task sent before the upgrade still gets its acknowledgement (jobs with
  media inputs keep theirs: their stored request no longer holds the inputs as sent).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

# A frozen copy of the GenerationJob fields kept from the old request layout.
_KEPT = (
    "model", "prompt", "mode", "width", "height", "duration_s", "fps", "num_frames",
    "source_seconds", "output_format", "output_quality", "ttl_s", "number_results",
    "include_cost", "safety_mode", "webhook_url", "upload_endpoint", "frame_image",
    "reference_images", "video",
)  # fmt: skip


def _blob_key(ref: str | None) -> str | None:
    return ref.removeprefix("blob:") if ref is not None else None


def _spec(old: dict[str, Any]) -> dict[str, Any]:
    """The resolved job an old stored request describes."""
    new = {key: old.get(key) for key in _KEPT}
    if new["num_frames"] is None:
        new["num_frames"] = int(old.get("duration_s") or 0) * int(old.get("fps") or 24)
    new["width"] = new["width"] or 0
    new["height"] = new["height"] or 0
    new["frame_image"] = _blob_key(new["frame_image"])
    new["video"] = _blob_key(new["video"])
    new["reference_images"] = [_blob_key(r) for r in new["reference_images"] or []]
    return new


# A frozen copy of VideoRequest.fingerprint() at this revision: its fields, in order.
_REQUEST_FIELDS = (
    "model", "prompt", "width", "height", "resolution", "duration_s", "output_format",
    "output_quality", "ttl_s", "number_results", "include_cost", "safety_mode", "webhook_url",
    "upload_endpoint", "seed", "frame_image", "reference_images", "video",
)  # fmt: skip


def _fingerprint(old: dict[str, Any]) -> str | None:
    """The new idempotency hash of an old text-to-video request (None for other modes)."""
    if old.get("mode") != "t2v" or old.get("reference_images"):
        return None
    values = {**old, "resolution": None, "reference_images": []}
    canonical = json.dumps([values.get(k) for k in _REQUEST_FIELDS], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event(kind: str, payload: str) -> tuple[str, str | None]:
    """(event, video_uuid) of an old outbox row's payload."""
    body = json.loads(payload)
    if kind == "upload":
        return "result_ready", body.get("videoUUID")
    if body.get("data"):
        return "result_ready", body["data"][0].get("videoUUID")
    return "task_failed", None


def upgrade() -> None:
    """Convert the outbox and the stored requests."""
    conn = op.get_bind()
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("event", sa.String(16)))
        batch.add_column(sa.Column("video_uuid", sa.String(36)))
    outbox = sa.table(
        "webhook_outbox",
        sa.column("id", sa.String),
        sa.column("kind", sa.String),
        sa.column("payload", sa.Text),
        sa.column("event", sa.String),
        sa.column("video_uuid", sa.String),
    )
    for row_id, kind, payload in conn.execute(
        sa.select(outbox.c.id, outbox.c.kind, outbox.c.payload)
    ).all():
        event, video_uuid = _event(kind, payload)
        conn.execute(
            outbox.update().where(outbox.c.id == row_id).values(event=event, video_uuid=video_uuid)
        )
    op.drop_index("ix_outbox_due", table_name="webhook_outbox")
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.alter_column("event", existing_type=sa.String(16), nullable=False)
        batch.drop_column("payload")
    op.rename_table("webhook_outbox", "deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_task", "deliveries", ["task_uuid"])

    jobs = sa.table(
        "jobs",
        sa.column("task_uuid", sa.String),
        sa.column("request", sa.Text),
        sa.column("request_hash", sa.String),
    )
    rows = conn.execute(sa.select(jobs.c.task_uuid, jobs.c.request, jobs.c.request_hash)).all()
    for task_uuid, request, request_hash in rows:
        old = json.loads(request)
        spec = json.dumps(_spec(old), sort_keys=True, separators=(",", ":"))
        values = {"request": spec, "request_hash": _fingerprint(old) or request_hash}
        conn.execute(jobs.update().where(jobs.c.task_uuid == task_uuid).values(**values))
    op.create_index("ix_jobs_owner", "jobs", ["owner", "created_at"])


def downgrade() -> None:
    """Not supported: the old layout kept rendered bodies this one no longer has."""
    raise NotImplementedError("0002 cannot be downgraded")

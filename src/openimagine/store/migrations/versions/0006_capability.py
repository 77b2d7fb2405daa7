"""Workers claim by capability (model, device size).

- `jobs.pixel_frames`: each job's size, width × height × frames, set at submit; a worker claims
  only jobs no bigger than its `max_pixel_frames`. Filled in here for queued and running jobs
  from their stored request; finished jobs (never claimed again) and a request that does not
  say keep NULL: unknown, which fits any worker.
- `workers.models`, `workers.max_pixel_frames`: each worker's capability, shown by /health.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def _pixel_frames(request: str) -> int | None:
    """A frozen copy of `GenerationJob.pixel_frames` as of this revision, from the stored
    request (`store.sql.codec`); None when it does not say."""
    try:
        spec: Any = json.loads(request)
        size = int(spec["width"]) * int(spec["height"]) * int(spec["num_frames"])
    except (ValueError, TypeError, KeyError):
        return None
    return size or None


def upgrade() -> None:
    """Add the columns; size the jobs that may still be claimed."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("pixel_frames", sa.BigInteger))
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("models", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("max_pixel_frames", sa.BigInteger, nullable=False, server_default="0")
        )
    conn = op.get_bind()
    jobs = sa.table(
        "jobs",
        sa.column("task_uuid", sa.String),
        sa.column("status", sa.String),
        sa.column("request", sa.Text),
        sa.column("pixel_frames", sa.BigInteger),
    )
    rows = conn.execute(
        sa.select(jobs.c.task_uuid, jobs.c.request).where(jobs.c.status.in_(("queued", "running")))
    ).all()
    for task, request in rows:
        size = _pixel_frames(request)
        if size is not None:
            conn.execute(jobs.update().where(jobs.c.task_uuid == task).values(pixel_frames=size))


def downgrade() -> None:
    """Drop the columns (nothing else depends on them)."""
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("max_pixel_frames")
        batch.drop_column("models")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pixel_frames")

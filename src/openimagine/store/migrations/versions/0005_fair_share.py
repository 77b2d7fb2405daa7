"""Fair share: keys with queued work take turns.

- `jobs.turn`: the round a job is claimed in; claims go by (turn, seq). Queued jobs are
  numbered per key from 0 in their enqueue order, so every key with queued work starts in the
  first round.
- `key_turns`: each key's next turn, and how many of its last batch were admitted (see
  `tables.key_turns`).
- `ix_jobs_turn` (status, turn, seq) replaces `ix_jobs_queue`; `ix_jobs_owner_turn`
  (owner, status, turn) replaces `ix_jobs_owner_status`.
- `queue_holes` is dropped: a queued job's place is now counted per key (see `submits`).
- `ix_media_expires`, `ix_media_owner` (owner, expires_at, size_bytes): the sweeper's expired
  inputs, and a key's stored bytes summed from the index.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Add the column and table, number each key's queued jobs, swap the indexes."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("turn", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "key_turns",
        sa.Column("owner", sa.String(36), primary_key=True),
        sa.Column("next_turn", sa.BigInteger, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False, server_default="0"),
    )
    conn = op.get_bind()
    jobs = sa.table(
        "jobs",
        sa.column("task_uuid", sa.String),
        sa.column("owner", sa.String),
        sa.column("status", sa.String),
        sa.column("seq", sa.BigInteger),
        sa.column("turn", sa.BigInteger),
    )
    queued = conn.execute(
        sa.select(jobs.c.task_uuid, jobs.c.owner)
        .where(jobs.c.status == "queued")
        .order_by(jobs.c.seq)
    ).all()
    counts: dict[str, int] = {}
    for task, owner in queued:
        turn = counts.get(owner, 0)
        counts[owner] = turn + 1
        conn.execute(jobs.update().where(jobs.c.task_uuid == task).values(turn=turn))
    turns = sa.table("key_turns", sa.column("owner", sa.String), sa.column("next_turn"))
    for owner, n in counts.items():
        conn.execute(turns.insert().values(owner=owner, next_turn=n))
    op.drop_index("ix_jobs_queue", table_name="jobs")
    op.create_index("ix_jobs_turn", "jobs", ["status", "turn", "seq"])
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
    op.create_index("ix_jobs_owner_turn", "jobs", ["owner", "status", "turn"])
    op.drop_table("queue_holes")
    op.create_index("ix_media_expires", "media", ["expires_at"])
    op.create_index("ix_media_owner", "media", ["owner", "expires_at", "size_bytes"])


def downgrade() -> None:
    """Not supported: the holes of the old queue order are not kept."""
    raise NotImplementedError("0005 cannot be downgraded")

"""A dense queue order with holes, and result rows only for finished results.

- `jobs.seq`: the claim order (enqueue numbers from `queue_counter` on SQLite, from the
  sequence `queue_seq` on PostgreSQL); numbers of jobs that left the queue (claimed,
  canceled, deleted) or were never used are kept in `queue_holes`, so a queued job's place is
  computed from the head of the queue in O(log n) instead of counting the queue.
- `jobs.results_plan`: each result's [videoUUID, seed, cost], fixed at submit; the `results`
  table keeps rows of finished results only, so a submit writes a single row.
- `ix_jobs_queue` (status, seq) replaces `ix_jobs_claim`: jobs are claimed in `seq` order (the
  unused `priority` column stays for later).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Add the columns and tables, number every job by age, and move unfinished results into
    their job's plan."""
    conn = op.get_bind()
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("results_plan", sa.Text, nullable=False, server_default="[]"))
    op.create_table(
        "queue_counter",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("next_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "queue_holes",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    jobs = sa.table(
        "jobs",
        sa.column("task_uuid", sa.String),
        sa.column("created_at", sa.Double),
        sa.column("seq", sa.BigInteger),
        sa.column("results_plan", sa.Text),
    )
    results = sa.table(
        "results",
        sa.column("task_uuid", sa.String),
        sa.column("video_uuid", sa.String),
        sa.column("idx", sa.Integer),
        sa.column("seed", sa.BigInteger),
        sa.column("cost", sa.Double),
        sa.column("status", sa.String),
    )
    plans: dict[str, list[tuple[int, list[object]]]] = {}
    for task, video, idx, seed, cost in conn.execute(
        sa.select(results.c.task_uuid, results.c.video_uuid, results.c.idx, results.c.seed,
                  results.c.cost)
    ).all():  # fmt: skip
        plans.setdefault(task, []).append((idx, [video, seed, cost]))
    ordered = conn.execute(
        sa.select(jobs.c.task_uuid).order_by(jobs.c.created_at, jobs.c.task_uuid)
    ).all()
    for seq, (task,) in enumerate(ordered, start=1):
        plan = [entry for _, entry in sorted(plans.get(task, []), key=lambda e: e[0])]
        conn.execute(
            jobs.update()
            .where(jobs.c.task_uuid == task)
            .values(seq=seq, results_plan=json.dumps(plan, separators=(",", ":")))
        )
    conn.execute(sa.text("INSERT INTO queue_counter (id, next_seq) VALUES (1, :n)"),
                 {"n": len(ordered) + 1})  # fmt: skip
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"CREATE SEQUENCE queue_seq START WITH {len(ordered) + 1}"))
    # Running jobs were claimed: their numbers are holes in the queue.
    conn.execute(
        sa.text("INSERT INTO queue_holes (seq) SELECT seq FROM jobs WHERE status = 'running'")
    )
    conn.execute(results.delete().where(results.c.status == "processing"))
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.create_index("ix_jobs_queue", "jobs", ["status", "seq"])


def downgrade() -> None:
    """Not supported: unfinished results live only in the plan now."""
    raise NotImplementedError("0003 cannot be downgraded")

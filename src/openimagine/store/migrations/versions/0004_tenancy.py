"""Many tenants on one server.

- `deliveries.host`: each delivery's destination (`host:port`), so that the sender can bound
  and isolate deliveries per receiver when it claims them.
- `api_keys.configured`: keys given with `--api-key` are active only while the flag names
  them (before, such keys stayed forever once given). Keys labelled "configured" were stored
  that way.
- `api_keys.max_queued`, `max_running`, `requests_per_minute`, `daily_budget_usd`: per-key
  overrides of the quota settings; `spend`: what each key submitted per UTC day;
  `key_queue`: how many jobs each key has queued (counted from the jobs here);
  `ix_jobs_owner_status`: a key's queued and running jobs, counted at submit and claim.
- `usage`: the ledger, a row for every result that finished from now on (what a key is
  billed by; kept when its job is deleted).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def _destination(url: str) -> str:
    """A frozen copy of `domain.deliveries.destination` as of this revision."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url[:255]
    return f"{(parts.hostname or '').lower()}:{port}"[:255]


def upgrade() -> None:
    """Add the columns and the ledger; fill in each delivery's destination and mark the
    configured keys."""
    op.create_table(
        "usage",
        sa.Column("video_uuid", sa.String(36), primary_key=True),
        sa.Column("task_uuid", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seconds", sa.Double, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("cost", sa.Double, nullable=False),
        sa.Column("recorded_at", sa.Double, nullable=False),
    )
    op.create_index("ix_usage_owner", "usage", ["owner", "recorded_at"])
    op.create_index("ix_usage_recorded", "usage", ["recorded_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("configured", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("max_queued", sa.Integer))
        batch.add_column(sa.Column("max_running", sa.Integer))
        batch.add_column(sa.Column("requests_per_minute", sa.Integer))
        batch.add_column(sa.Column("daily_budget_usd", sa.Double))
    op.create_table(
        "spend",
        sa.Column("owner", sa.String(36), primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Double, nullable=False),
    )
    op.create_index("ix_jobs_owner_status", "jobs", ["owner", "status"])
    op.create_table(
        "key_queue",
        sa.Column("owner", sa.String(36), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("queued", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO key_queue (owner, shard, queued) SELECT owner, 0, count(*) FROM jobs"
        " WHERE status = 'queued' GROUP BY owner"
    )
    keys = sa.table("api_keys", sa.column("label", sa.String), sa.column("configured", sa.Boolean))
    op.get_bind().execute(keys.update().where(keys.c.label == "configured").values(configured=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=False, server_default=""))
    conn = op.get_bind()
    rows = sa.table("deliveries", sa.column("id", sa.String), sa.column("url", sa.Text),
                    sa.column("host", sa.String))  # fmt: skip
    for delivery_id, url in conn.execute(sa.select(rows.c.id, rows.c.url)).all():
        conn.execute(rows.update().where(rows.c.id == delivery_id).values(host=_destination(url)))


def downgrade() -> None:
    """Drop the ledger and the columns (nothing else depends on them)."""
    op.drop_table("usage")
    op.drop_table("spend")
    op.drop_table("key_queue")
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
    with op.batch_alter_table("api_keys") as batch:
        for name in ("max_queued", "max_running", "requests_per_minute", "daily_budget_usd"):
            batch.drop_column(name)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("host")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("configured")

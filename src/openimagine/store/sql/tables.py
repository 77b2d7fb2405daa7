"""One schema, SQLAlchemy Core, shared by SQLite and PostgreSQL (migrations mirror it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("prefix", sa.String(16), nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double),
    sa.Column("configured", sa.Boolean, nullable=False, server_default=sa.false()),
    # Per-key overrides of the quota settings (NULL: the server's default).
    sa.Column("max_queued", sa.Integer),
    sa.Column("max_running", sa.Integer),
    sa.Column("requests_per_minute", sa.Integer),
    sa.Column("daily_budget_usd", sa.Double),
)

# How many jobs each key has queued, kept with every change of a job to or from `queued` (in
# the same transaction): a submit checks its key's queue limit in O(1), whatever the depth.
key_queue = sa.Table(
    "key_queue",
    metadata,
    sa.Column("owner", sa.String(36), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),  # `raw.SHARD`
    sa.Column("queued", sa.Integer, nullable=False),
)

# What each key submitted per UTC day, in dollars: its daily budget is checked against it.
spend = sa.Table(
    "spend",
    metadata,
    sa.Column("owner", sa.String(36), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Double, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("task_uuid", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(36), nullable=False),
    sa.Column("task_type", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # GenerationJob JSON
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("number_results", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_expires_at", sa.Double),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    # The enqueue order (see queue_counter): oldest first among jobs of the same turn.
    sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
    # Each result's [videoUUID, seed, cost], fixed at submit; `results` holds a row only
    # once a result has finished (perf: a submit writes one row, not 1 + numberResults).
    sa.Column("results_plan", sa.Text, nullable=False, server_default="[]"),
    # Fair share: the round in which the job is claimed (see `key_turns`). Jobs are claimed
    # by (turn, seq), so keys with queued work take turns, each oldest first.
    sa.Column("turn", sa.BigInteger, nullable=False, server_default="0"),
    # Its size, width × height × frames: workers claim only jobs their device can take
    # (`domain.jobs.Capability`). NULL: unknown, fits any worker.
    sa.Column("pixel_frames", sa.BigInteger),
)
sa.Index("ix_jobs_turn", jobs.c.status, jobs.c.turn, jobs.c.seq)
sa.Index("ix_jobs_owner", jobs.c.owner, jobs.c.created_at)
# A key's queued and running jobs, and its first and last queued turn.
sa.Index("ix_jobs_owner_turn", jobs.c.owner, jobs.c.status, jobs.c.turn)

# Each key's next turn. A key's queued jobs hold consecutive turns, from its first queued one
# to `next_turn - 1`; a key that had nothing queued joins at the head of the queue. So a
# queued job's place is, summed over the keys with queued work, how many of their turns come
# before its own: one index probe a key, whatever the depth of the queue.
key_turns = sa.Table(
    "key_turns",
    metadata,
    sa.Column("owner", sa.String(36), primary_key=True),
    sa.Column("next_turn", sa.BigInteger, nullable=False),
    # PostgreSQL: how many of the key's last batch its queue limit admitted (decided on the
    # locked row, so concurrent batches of one key never pass the limit together).
    sa.Column("batch", sa.Integer, nullable=False, server_default="0"),
)
# No index on `next_turn`: updated on every batch, an indexed column would make each update
# leave a dead index entry (no HOT update on PostgreSQL) that every poll's scan of the keys
# then steps over until the next vacuum. The table has a row per key; polls read it whole.

# The next enqueue number (one row; PostgreSQL uses the sequence `queue_seq`).
queue_counter = sa.Table(
    "queue_counter",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("next_seq", sa.BigInteger, nullable=False),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("video_uuid", sa.String(36), primary_key=True),
    sa.Column(
        "task_uuid",
        sa.String(64),
        sa.ForeignKey("jobs.task_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # success | error (finished only)
    sa.Column("blob_key", sa.String(300)),
    sa.Column("content_type", sa.String(100)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("cost", sa.Double),
    sa.Column("nsfw", sa.Boolean),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("completed_at", sa.Double),
    sa.Column("expires_at", sa.Double),
    sa.UniqueConstraint("task_uuid", "idx", name="uq_results_task_idx"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "task_uuid",
        sa.String(64),
        sa.ForeignKey("jobs.task_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),  # DeliveryKind
    sa.Column("event", sa.String(16), nullable=False),  # DeliveryEvent
    sa.Column("video_uuid", sa.String(36)),  # the result a result_ready event names
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),  # `destination`
    sa.Column("status", sa.String(16), nullable=False),  # DeliveryStatus
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("lease_expires_at", sa.Double),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("delivered_at", sa.Double),
)
sa.Index("ix_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
sa.Index("ix_deliveries_task", deliveries.c.task_uuid)

# One row per finished result (its video UUID): kept when the job is deleted, for billing.
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("video_uuid", sa.String(36), primary_key=True),
    sa.Column("task_uuid", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ResultStatus: success or error
    sa.Column("seconds", sa.Double, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("cost", sa.Double, nullable=False),
    sa.Column("recorded_at", sa.Double, nullable=False),
)
sa.Index("ix_usage_owner", usage.c.owner, usage.c.recorded_at)
sa.Index("ix_usage_recorded", usage.c.recorded_at)

media = sa.Table(
    "media",
    metadata,
    sa.Column("media_uuid", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(36), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # MediaKind
    sa.Column("blob_key", sa.String(300), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("duration_s", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double),
)
sa.Index("ix_media_expires", media.c.expires_at)
# A key's stored bytes, summed from the index alone (its byte cap is checked per input).
sa.Index("ix_media_owner", media.c.owner, media.c.expires_at, media.c.size_bytes)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # WorkerState
    sa.Column("backend", sa.String(100), nullable=False),
    sa.Column("weights", sa.String(300), nullable=False),
    sa.Column("random_weights", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("heartbeat_at", sa.Double, nullable=False),
    # Its `Capability`: the models it claims (a JSON list; empty: any) and the largest job.
    sa.Column("models", sa.Text, nullable=False, server_default="[]"),
    sa.Column("max_pixel_frames", sa.BigInteger, nullable=False, server_default="0"),
)

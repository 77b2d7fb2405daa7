"""Fair share: the turns of the claim order (see `tables.key_turns`).

Claims go by (turn, seq). A key's queued jobs hold consecutive turns, from its first queued
one to `next_turn - 1`, so keys with queued work take turns, each oldest first. A key that had
nothing queued joins the current round, or the next one if its last job was claimed in this
one: a key that queued 1,000 tasks delays another key's first task by at most one task per
worker.

The statements here keep that invariant wherever a job enters or leaves the queue other than
by a claim (a claim always takes a key's first turn): a submit appends at the key's next turn
(`submits`), a cancel or delete closes the gap it leaves, a released job goes back before its
key's first. On PostgreSQL each of them holds the key's `key_turns` row, taken before any of
the key's jobs, so they see each other's turns and never deadlock. Because the turns are
consecutive, a job's place is counted per key with one index probe (its first queued turn),
never by counting the queue.
"""

from __future__ import annotations

import sqlalchemy as sa

from openimagine.store.sql import raw

# The first queued turn. perf: written as the first row in index order, not `min(turn)`: a
# PostgreSQL plan made while the queue was empty may aggregate `min` over every queued job's
# index entry, where this one stops at the first whatever the plan (see `pg_async`).
FIRST = "(SELECT turn FROM jobs WHERE status = 'queued' ORDER BY turn LIMIT 1)"
# The round a key that had nothing queued joins: the head of the queue; with nothing queued,
# the latest round any key reached (so keys that come back together start together).
HEAD = f"COALESCE({FIRST}, (SELECT max(next_turn) FROM key_turns), 0)"  # noqa: S608
SELECT_HEAD = f"SELECT {HEAD}"

# SQLite (one writer): `:n` turns for `:owner`, from its next turn if it has jobs queued, else
# from the head, or the round after when its last job was claimed in this one. Returns the new
# next turn. A batch reads the head once, before any of its keys is given turns.
ALLOT_SQLITE = """
INSERT INTO key_turns (owner, next_turn, batch) VALUES (:owner, :head + :n, :n)
ON CONFLICT (owner) DO UPDATE SET batch = :n, next_turn = :n + CASE
    WHEN EXISTS (SELECT 1 FROM jobs WHERE owner = :owner AND status = 'queued')
    THEN max(key_turns.next_turn, :head)
    ELSE min(max(key_turns.next_turn, :head), :head + 1) END
RETURNING next_turn
"""

# A queued job of `:owner` at `:turn` left the queue: the key's later jobs move up a turn,
# unless it was the key's first (then the next one simply becomes first).
_SHIFT = """
UPDATE jobs SET turn = turn - 1 WHERE owner = :owner AND status = 'queued' AND turn > :turn
AND EXISTS (SELECT 1 FROM jobs b WHERE b.owner = :owner AND b.status = 'queued' AND b.turn < :turn)
"""
# Then the next turn follows the key's last queued one (or is `:turn`, the first turn it gave
# up, when none is left).
_NEXT = """
UPDATE key_turns SET next_turn = COALESCE(
    (SELECT max(turn) + 1 FROM jobs WHERE owner = :owner AND status = 'queued'), :turn)
WHERE owner = :owner
"""
# PostgreSQL, rare: two batches inserted the same new task at once, and the one that lost
# gave it a turn. Renumber the key's queued jobs from its first, and its next turn after them.
COMPACT_PG = """
WITH held AS (SELECT next_turn FROM key_turns WHERE owner = :owner FOR UPDATE),
c AS (
    SELECT task_uuid, turn, min(turn) OVER () AS h, count(*) OVER () AS n,
        row_number() OVER (ORDER BY turn, seq) - 1 AS r
    FROM jobs WHERE owner = :owner AND status = 'queued' AND EXISTS (SELECT 1 FROM held)
),
moved AS (
    UPDATE jobs SET turn = c.h + c.r FROM c
    WHERE jobs.task_uuid = c.task_uuid AND jobs.turn <> c.h + c.r RETURNING 1
)
UPDATE key_turns SET next_turn = COALESCE((SELECT max(h + n) FROM c), next_turn)
WHERE owner = :owner
"""
# A released job goes back before its key's first queued one (it had its turn and lost its
# worker), else to the head of the queue; the key's next turn follows its last queued job.
_REQUEUE = """
UPDATE jobs SET turn = COALESCE(
    (SELECT min(q.turn) - 1 FROM jobs q
     WHERE q.owner = jobs.owner AND q.status = 'queued' AND q.task_uuid <> :task),
    (SELECT min(q.turn) FROM jobs q WHERE q.status = 'queued' AND q.task_uuid <> :task),
    turn)
WHERE task_uuid = :task RETURNING turn
"""
_AFTER = """
INSERT INTO key_turns (owner, next_turn, batch) VALUES (:owner, :turn + 1, 0)
ON CONFLICT (owner) DO UPDATE SET next_turn =
    (SELECT max(turn) + 1 FROM jobs WHERE owner = :owner AND status = 'queued')
"""
_LOCK = "SELECT next_turn FROM key_turns WHERE owner = :owner FOR UPDATE"

# How many queued jobs are claimed before job `j` (queued): for each key with queued work
# (turns `h` to `next_turn - 1`; a key with none has its next turn at or below the head), those
# of its turns before j's, plus the jobs of j's own turn enqueued before it. perf: on
# PostgreSQL a lateral probe per key runs and plans in half the time of two scalar subqueries.
_ACTIVE = f"k.next_turn > {FIRST}"
_SAME_TURN = (
    "(SELECT count(*) FROM jobs q WHERE q.status = 'queued' AND q.turn = j.turn AND q.seq < j.seq)"
)
_PLACE = {
    "postgresql": f"""(
    SELECT COALESCE(sum(LEAST(GREATEST(j.turn - h.turn, 0), k.next_turn - h.turn)), 0)
    FROM key_turns k CROSS JOIN LATERAL (
        SELECT q.turn FROM jobs q WHERE q.owner = k.owner AND q.status = 'queued'
        ORDER BY q.turn LIMIT 1
    ) AS h
    WHERE {_ACTIVE}
) + {_SAME_TURN}""",  # noqa: S608 - constant text
    "sqlite": f"""(
    SELECT COALESCE(sum(min(max(j.turn - a.h, 0), a.n - a.h)), 0) FROM (
        SELECT k.next_turn AS n,
            (SELECT min(q.turn) FROM jobs q WHERE q.owner = k.owner AND q.status = 'queued') AS h
        FROM key_turns k WHERE {_ACTIVE}
    ) AS a WHERE a.h IS NOT NULL
) + {_SAME_TURN}""",  # noqa: S608 - constant text
}


def place_sql(dialect: str) -> str:
    """The place of the queued job aliased `j`, as an SQL expression."""
    return _PLACE[dialect]


def hold(conn: sa.Connection, owner: str) -> None:
    """PostgreSQL: lock `owner`'s turns for this transaction, before any of its jobs (every
    writer of a key's turns takes this lock first). SQLite has one writer: nothing to do."""
    if conn.dialect.name == "postgresql":
        raw.execute(conn, _LOCK, {"owner": owner})


def left_queue(conn: sa.Connection, owner: str, turn: int) -> None:
    """A queued job of `owner` at `turn` was canceled or deleted in this transaction (after
    `hold`)."""
    params = {"owner": owner, "turn": turn}
    raw.execute(conn, _SHIFT, params)
    raw.execute(conn, _NEXT, params)


def requeued(conn: sa.Connection, task_uuid: str, owner: str) -> None:
    """A running job of `owner` went back to the queue in this transaction (after `hold`)."""
    row = raw.execute(conn, _REQUEUE, {"task": task_uuid}).fetchone()
    raw.execute(conn, _AFTER, {"owner": owner, "turn": int(row[0])})

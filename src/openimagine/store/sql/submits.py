"""The statements of every submit and poll (see `executor`): a batch of jobs inserted with
their queue numbers and turns, a job read with its results in one statement, and a queued
job's place in the claim order (`turns`)."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from openimagine.domain.jobs import Job, NewJob, Result
from openimagine.domain.quotas import Admission, utc_day
from openimagine.errors import Conflict, QuotaExceeded
from openimagine.store.quotas import over_budget, queue_full
from openimagine.store.sql import raw, turns
from openimagine.store.sql.codec import spec_json
from openimagine.store.sql.executor import Executor, Row

_JOB_ROW = (
    "(:task_uuid_{i}, :owner_{i}, :task_type_{i}, :model_{i}, :request_{i}, :request_hash_{i},"
    " 'queued', 0, 0, :max_attempts_{i}, 0, false, :number_results_{i}, :created_at_{i},"
    " :seq_{i}, :results_plan_{i}, :turn_{i}, :pixel_frames_{i})"
)
_INSERT_JOBS = """
INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash, status, priority,
    attempts, max_attempts, progress, cancel_requested, number_results, created_at, seq,
    results_plan, turn, pixel_frames)
VALUES {rows}
ON CONFLICT (task_uuid) DO NOTHING RETURNING task_uuid
"""
# perf: on PostgreSQL a batch is one statement in its own implicit transaction (one round trip
# and one commit): the rows travel as one JSON parameter of a text that never changes, so
# psycopg prepares it once (planned on every run, it would cost half as much again); queue
# numbers come from the sequence and workers are notified when it commits. Its reads of the
# queue's head stay index probes in a plan made while the queue was empty because the
# connections that run it never plan a sequential scan (`pg_async`).
# Turns and the queue limit (`max_queued` of a row, 0: none) are decided on each key's locked
# `key_turns` row (see `turns`), keys in order: a later batch of the same key waits for this
# one and sees what it added, so two batches never share a turn or pass the limit together.
# On that row, the key's queued count is the snapshot's plus the turns other batches gave out
# since (`seen`: the next turn in the snapshot). Tasks stored already are retries: never
# refused, given no turn.
_PG_CREATE = f"""
WITH r0 AS (
    SELECT x.*, nextval('queue_seq') AS seq,
        EXISTS (SELECT 1 FROM jobs WHERE jobs.task_uuid = x.task_uuid) AS stored
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(i int, task_uuid text, owner text,
        task_type text, model text, request text, request_hash text, max_attempts int,
        number_results int, created_at double precision, results_plan text, max_queued int,
        pixel_frames bigint)
),
r AS (
    SELECT r0.*, row_number() OVER (PARTITION BY r0.owner, r0.stored ORDER BY r0.i) - 1 AS k
    FROM r0
),
head AS (SELECT {turns.HEAD} AS h),
wanted AS (
    SELECT r.owner, count(*) AS n, max(r.max_queued) AS lim,
        (SELECT t.next_turn FROM key_turns t WHERE t.owner = r.owner) AS seen,
        (SELECT 1 FROM jobs q WHERE q.owner = r.owner AND q.status = 'queued' LIMIT 1)
            IS NOT NULL AS busy,
        COALESCE((SELECT sum(c.queued) FROM key_queue c WHERE c.owner = r.owner), 0) AS queued
    FROM r WHERE NOT r.stored GROUP BY r.owner
),
allotted AS (
    INSERT INTO key_turns (owner, next_turn, batch)
    SELECT w.owner, head.h + a.n, a.n FROM wanted w CROSS JOIN head CROSS JOIN LATERAL (
        SELECT CASE WHEN w.lim = 0 THEN w.n ELSE LEAST(w.n, GREATEST(w.lim - w.queued, 0)) END
    ) AS a(n)
    ORDER BY w.owner
    ON CONFLICT (owner) DO UPDATE SET (next_turn, batch) = (
        SELECT d.start + d.admit, d.admit FROM (
            SELECT CASE WHEN w.busy OR key_turns.next_turn IS DISTINCT FROM w.seen
                    THEN GREATEST(key_turns.next_turn, head.h)
                    ELSE LEAST(GREATEST(key_turns.next_turn, head.h), head.h + 1) END AS start,
                CASE WHEN w.lim = 0 THEN w.n ELSE LEAST(w.n, GREATEST(w.lim - w.queued
                    - GREATEST(key_turns.next_turn - COALESCE(w.seen, head.h), 0), 0)) END
                    AS admit
            FROM wanted w CROSS JOIN head WHERE w.owner = excluded.owner
        ) AS d
    )
    RETURNING owner, next_turn, batch
),
ins AS (
    INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash, status,
        priority, attempts, max_attempts, progress, cancel_requested, number_results,
        created_at, seq, results_plan, turn, pixel_frames)
    SELECT r.task_uuid, r.owner, r.task_type, r.model, r.request, r.request_hash, 'queued', 0,
        0, r.max_attempts, 0, false, r.number_results, r.created_at, r.seq, r.results_plan,
        a.next_turn - a.batch + r.k, r.pixel_frames
    FROM r JOIN allotted a ON a.owner = r.owner
    WHERE NOT r.stored AND r.k < a.batch
    ON CONFLICT (task_uuid) DO NOTHING
    RETURNING seq, owner, turn
),
counted AS (
    INSERT INTO key_queue (owner, shard, queued)
    SELECT owner, {raw.SHARD["postgresql"]}, count(*) FROM ins GROUP BY owner
    ON CONFLICT (owner, shard) DO UPDATE SET queued = key_queue.queued + excluded.queued
)
SELECT r.seq, ins.turn, r.stored, NOT r.stored AND r.k < COALESCE(a.batch, 0),
    (SELECT pg_notify('openimagine_jobs', '') WHERE EXISTS (SELECT 1 FROM ins))
FROM r LEFT JOIN ins ON ins.seq = r.seq LEFT JOIN allotted a ON a.owner = r.owner
ORDER BY r.i
"""  # noqa: S608 - the shard expression is a constant
_RESERVE = "UPDATE queue_counter SET next_seq = next_seq + :n WHERE id = 1 RETURNING next_seq"
_SELECT_JOB = f"""
SELECT {raw.columns(raw.JOB_COLUMNS, "j")}, {raw.columns(raw.RESULT_COLUMNS, "r")}
FROM jobs j LEFT JOIN results r ON r.task_uuid = j.task_uuid
WHERE j.task_uuid = :task_uuid ORDER BY r.idx
"""  # noqa: S608 - the column names are constants
# perf: prepared on PostgreSQL, like `_PG_CREATE` (its place reads are index probes whatever
# the statistics said when it was planned: see `pg_async`).
_SELECT_PLACED = {
    dialect: f"""
SELECT {raw.columns(raw.JOB_COLUMNS, "j")}, {raw.columns(raw.RESULT_COLUMNS, "r")},
    CASE WHEN j.status = 'queued' THEN {turns.place_sql(dialect)} END
FROM jobs j LEFT JOIN results r ON r.task_uuid = j.task_uuid
WHERE j.task_uuid = :task_uuid ORDER BY r.idx
"""  # noqa: S608 - the column names are constants
    for dialect in ("sqlite", "postgresql")
}

Creation = tuple[NewJob, float, Admission]
_EXISTING = "SELECT task_uuid FROM jobs WHERE task_uuid IN ({names})"
_QUEUED_OF = "SELECT sum(queued) FROM key_queue WHERE owner = :owner"

_SPENT = "SELECT amount FROM spend WHERE owner = :owner AND day = :day"
# Never past the budget, even when two batches of one key commit at once (PostgreSQL takes
# the row's lock and checks the condition again on the row it then sees).
_SPEND = """
INSERT INTO spend (owner, day, amount) VALUES (:owner, :day, :amount)
ON CONFLICT (owner, day) DO UPDATE SET amount = spend.amount + excluded.amount
WHERE spend.amount + excluded.amount <= :budget
RETURNING amount
"""


@functools.cache
def _values(template: str, n: int) -> str:
    return ", ".join(template.format(i=i) for i in range(n))


async def create(ex: Executor, creations: list[Creation]) -> list[tuple[bool, Any]]:
    """Insert the jobs of a batch of submits, each with the next queue number, unless it
    takes its key past a quota (`QuotaExceeded`, nothing stored). A task UUID that exists
    already gives the stored job when it is the same request from the same owner, else
    `Conflict`.

    perf: on PostgreSQL a key's queue limit is checked by the insert statement itself (one
    round trip a batch); a key with a daily budget is admitted here first, in both stores."""
    in_sql = ex.dialect == "postgresql"
    refusals = await _admit(ex, creations, budgets_only=in_sql)
    admitted = [(new, now, quota) for (new, now, quota), no in zip(creations, refusals, strict=True)
                if not no]  # fmt: skip
    if not admitted:
        made = []
    elif in_sql:
        made = await _create_pg(ex, admitted)
    else:
        made = await _create_sqlite(ex, [(new, now) for new, now, _ in admitted])
    done = iter(made)
    return [(False, no) if no else next(done) for no in refusals]


async def _admit(
    ex: Executor, creations: list[Creation], *, budgets_only: bool = False
) -> list[QuotaExceeded | None]:
    """Which submits of a batch a quota refuses: per key, in order, a new task past its queue
    limit or its daily budget (a task already stored is never refused: a retried submit
    gets its acknowledgement). `budgets_only`: only keys with a budget (the statement checks
    the others' queue limits)."""
    refusals: list[QuotaExceeded | None] = [None] * len(creations)
    by_owner: dict[str, list[int]] = {}
    for i, (new, _, quota) in enumerate(creations):
        if quota.daily_budget_usd if budgets_only else quota.any:
            by_owner.setdefault(new.owner, []).append(i)
    for owner, indices in by_owner.items():
        await _admit_owner(ex, owner, creations, indices, refusals)
    return refusals


async def _stored(ex: Executor, tasks: list[str]) -> set[str]:
    """Which of these tasks exist already (retries: never refused, given no turn)."""
    names = ", ".join(f":t{n}" for n in range(len(tasks)))
    params = {f"t{n}": task for n, task in enumerate(tasks)}
    return {row[0] for row in await ex.fetchall(_EXISTING.format(names=names), params)}


async def _admit_owner(
    ex: Executor,
    owner: str,
    creations: list[Creation],
    indices: list[int],
    refusals: list[QuotaExceeded | None],
) -> None:
    quota, now = creations[indices[0]][2], creations[indices[0]][1]
    queued = 0
    if quota.max_queued:
        found = await ex.fetchone(_QUEUED_OF, {"owner": owner})
        queued = int(found[0]) if found and found[0] is not None else 0
    day, spent = utc_day(now), 0.0
    if quota.daily_budget_usd:
        found = await ex.fetchone(_SPENT, {"owner": owner, "day": day})
        spent = float(found[0]) if found else 0.0
    # perf: retried tasks (never charged, never refused) are looked for only where they
    # matter: with a budget, or once a queue limit refuses something.
    mine = [creations[i][0] for i in indices]
    tasks = [new.task_uuid for new in mine]
    known = await _stored(ex, tasks) if quota.daily_budget_usd else set()
    verdicts = _decide(mine, known, quota, queued, spent, now)
    if not quota.daily_budget_usd and any(verdicts):
        known = await _stored(ex, tasks)
        verdicts = _decide(mine, known, quota, queued, spent, now)
    taken = [i for i, new, no in zip(indices, mine, verdicts, strict=True)
             if no is None and new.task_uuid not in known]  # fmt: skip
    for i, no in zip(indices, verdicts, strict=True):
        refusals[i] = no
    added = sum(float(sum(creations[i][0].costs)) for i in taken)
    if quota.daily_budget_usd and added:
        params = {"owner": owner, "day": day, "amount": added, "budget": quota.daily_budget_usd}
        if await ex.fetchone(_SPEND, params) is None:  # another batch spent it meanwhile
            for i in taken:
                refusals[i] = over_budget(quota.daily_budget_usd, spent, added, now)


def _decide(
    mine: list[NewJob], known: set[str], quota: Admission, queued: int, spent: float, now: float
) -> list[QuotaExceeded | None]:
    """Each of a key's submits, in order: refused, or admitted (a stored task always is)."""
    verdicts: list[QuotaExceeded | None] = []
    for new in mine:
        cost = float(sum(new.costs))
        if new.task_uuid in known:
            verdicts.append(None)
        elif quota.max_queued and queued >= quota.max_queued:
            verdicts.append(queue_full(quota.max_queued))
        elif quota.daily_budget_usd and spent + cost > quota.daily_budget_usd + 1e-9:
            verdicts.append(over_budget(quota.daily_budget_usd, spent, cost, now))
        else:
            queued, spent = queued + 1, spent + cost
            verdicts.append(None)
    return verdicts


async def _create_sqlite(
    ex: Executor, creations: list[tuple[NewJob, float]]
) -> list[tuple[bool, Any]]:
    stored = await _stored(ex, [new.task_uuid for new, _ in creations])
    seqs = await _reserve(ex, len(creations))
    turn_of = await _allot(ex, [new for new, _ in creations if new.task_uuid not in stored])
    fresh = [(i, new, now, seq) for i, ((new, now), seq) in enumerate(zip(creations, seqs,
             strict=True)) if new.task_uuid in turn_of]  # fmt: skip
    inserted: set[str] = set()
    if fresh:
        sql, params = _INSERT_JOBS.format(rows=_values(_JOB_ROW, len(fresh))), {}
        for n, (_, new, now, seq) in enumerate(fresh):
            row = _job_row(new, now, seq, turn_of[new.task_uuid])
            params.update({f"{k}_{n}": v for k, v in row.items()})
        inserted = {row[0] for row in await ex.fetchall(sql, params)}
        ex.wake()
        added: dict[str, int] = {}
        for _, new, _, _ in fresh:
            if new.task_uuid in inserted:
                added[new.owner] = added.get(new.owner, 0) + 1
        for owner, n in added.items():
            await ex.execute(raw.count_queued_sql(ex.dialect), {"owner": owner, "n": n})
    outcomes: list[tuple[bool, Any]] = []
    for (new, now), seq in zip(creations, seqs, strict=True):
        if new.task_uuid in inserted:
            inserted.discard(new.task_uuid)  # a second submit of it in this batch finds it
            job = new.queued(now, seq, turn_of[new.task_uuid])
            outcomes.append((True, (job, new.pending_results(), True)))
        else:
            outcomes.append(await _existing(ex, new))
    return outcomes


async def _allot(ex: Executor, new_jobs: list[NewJob]) -> dict[str, int]:
    """SQLite: each new task's turn, consecutive per key from the key's next turn."""
    mine: dict[str, list[str]] = {}
    for new in new_jobs:
        tasks = mine.setdefault(new.owner, [])
        if new.task_uuid not in tasks:
            tasks.append(new.task_uuid)
    turn_of: dict[str, int] = {}
    if not mine:
        return turn_of
    head = await ex.fetchone(turns.SELECT_HEAD)
    assert head is not None  # noqa: S101 - an aggregate has a row
    for owner, tasks in mine.items():
        params = {"owner": owner, "n": len(tasks), "head": head[0]}
        found = await ex.fetchone(turns.ALLOT_SQLITE, params)
        assert found is not None  # noqa: S101 - an upsert returns its row
        first = int(found[0]) - len(tasks)
        turn_of.update((task, first + k) for k, task in enumerate(tasks))
    return turn_of


async def _create_pg(ex: Executor, creations: list[Creation]) -> list[tuple[bool, Any]]:
    first: dict[str, int] = {}  # a task sent twice in one batch: its first submit inserts
    rows = []
    for i, (new, now, quota) in enumerate(creations):
        if new.task_uuid not in first:
            first[new.task_uuid] = i
            # a key with a budget was admitted by `_admit`, its queue limit included
            limit = 0 if quota.daily_budget_usd else quota.max_queued
            rows.append({"i": i, **_job_row(new, now, 0, 0), "max_queued": limit})
    sent = await ex.fetchall(_PG_CREATE, {"rows": orjson.dumps(rows).decode()})
    done = {row["i"]: (int(seq), turn, bool(stored), bool(admitted))
            for row, (seq, turn, stored, admitted, _) in zip(rows, sent, strict=True)}  # fmt: skip
    for owner in {row["owner"] for row in rows if _lost(*done[row["i"]])}:
        await ex.execute(turns.COMPACT_PG, {"owner": owner})
    outcomes: list[tuple[bool, Any]] = []
    for i, (new, now, quota) in enumerate(creations):
        seq, turn, stored, admitted = done.get(i, (0, None, True, False))
        if turn is not None:
            outcomes.append((True, (new.queued(now, seq, turn), new.pending_results(), True)))
        elif stored or admitted:  # a retry (or a second submit of it in this batch)
            outcomes.append(await _existing(ex, new))
        else:
            outcomes.append((False, queue_full(quota.max_queued)))
    return outcomes


def _lost(seq: int, turn: int | None, stored: bool, admitted: bool) -> bool:
    """Given a turn, not inserted: another batch inserted the same new task meanwhile."""
    return admitted and turn is None


async def _reserve(ex: Executor, n: int) -> list[int]:
    """`n` new queue numbers from the counter row (SQLite: one writer at a time)."""
    reserved = await ex.fetchone(_RESERVE, {"n": n})
    assert reserved is not None  # noqa: S101 - the counter row exists (migration 0003)
    return list(range(int(reserved[0]) - n, int(reserved[0])))


async def _existing(ex: Executor, new: NewJob) -> tuple[bool, Any]:
    """The stored job of a submit that inserted nothing."""
    found = await get(ex, new.task_uuid, None)
    if found is None:  # deleted meanwhile
        return False, Conflict(f"taskUUID {new.task_uuid} is being deleted.", parameter="taskUUID")
    existing, results = found
    if existing.request_hash != new.request_hash or existing.owner != new.owner:
        return False, Conflict(
            f"taskUUID {new.task_uuid} was already used for a different request.",
            parameter="taskUUID",
        )
    return True, (existing, results, False)


def _job_row(new: NewJob, now: float, seq: int, turn: int) -> dict[str, Any]:
    return {
        "task_uuid": new.task_uuid,
        "owner": new.owner,
        "task_type": new.task_type,
        "model": new.spec.model,
        "request": spec_json(new.spec),
        "request_hash": new.request_hash,
        "max_attempts": new.max_attempts,
        "number_results": len(new.video_uuids),
        "created_at": now,
        "seq": seq,
        "results_plan": raw.plan_json(new),
        "turn": turn,
        "pixel_frames": new.spec.pixel_frames,
    }  # on PostgreSQL `seq` and `turn` are ignored: the statement gives them


async def get(ex: Executor, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
    """A job and its results (owner None: any owner)."""
    rows = await ex.fetchall(_SELECT_JOB, {"task_uuid": task_uuid})
    return _job_of(rows, task_uuid, owner)


async def get_placed(
    ex: Executor, task_uuid: str, owner: str | None
) -> tuple[Job, list[Result], int | None] | None:
    """A job, its results and, while it is queued, how many jobs are claimed before it."""
    rows = await ex.fetchall(_SELECT_PLACED[ex.dialect], {"task_uuid": task_uuid})
    found = _job_of(rows, task_uuid, owner)
    if found is None:
        return None
    job, results = found
    place = rows[0][-1]
    return job, results, None if place is None else int(place)


def _job_of(rows: list[Row], task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
    if not rows:
        return None
    job = raw.job_from(rows[0])
    if owner is not None and job.owner != owner:
        return None
    start, end = len(raw.JOB_COLUMNS), len(raw.JOB_COLUMNS) + len(raw.RESULT_COLUMNS)
    finished = [raw.result_from(row[start:end]) for row in rows if row[start] is not None]
    return job, raw.merge(task_uuid, raw.plan_from(rows[0][raw.PLAN]), finished)

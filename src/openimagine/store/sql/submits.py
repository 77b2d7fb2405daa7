"""The statements of every submit and poll (see `executor`): a batch of jobs inserted with
their queue numbers, a job read with its results in one statement, and a queued job's place
from the head of the queue."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from openimagine.domain.jobs import Job, NewJob, Result
from openimagine.domain.quotas import Admission, utc_day
from openimagine.errors import Conflict, QuotaExceeded
from openimagine.store.quotas import over_budget, queue_full
from openimagine.store.sql import raw
from openimagine.store.sql.codec import spec_json
from openimagine.store.sql.executor import Executor, Replanned, Row

_JOB_ROW = (
    "(:task_uuid_{i}, :owner_{i}, :task_type_{i}, :model_{i}, :request_{i}, :request_hash_{i},"
    " 'queued', 0, 0, :max_attempts_{i}, 0, false, :number_results_{i}, :created_at_{i},"
    " :seq_{i}, :results_plan_{i})"
)
_INSERT_JOBS = """
INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash, status, priority,
    attempts, max_attempts, progress, cancel_requested, number_results, created_at, seq,
    results_plan)
VALUES {rows}
ON CONFLICT (task_uuid) DO NOTHING RETURNING task_uuid
"""
# perf: on PostgreSQL a batch is one statement in its own implicit transaction (one round trip
# and one commit): the rows travel as one JSON parameter of a text that never changes (psycopg
# converts, and the server plans, one statement whatever the batch size); queue numbers come
# from the sequence, unused ones become holes, and workers are notified when it commits.
_PG_CREATE = f"""
WITH r AS (
    SELECT x.*, nextval('queue_seq') AS seq
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(i int, task_uuid text, owner text,
        task_type text, model text, request text, request_hash text, max_attempts int,
        number_results int, created_at double precision, results_plan text)
),
ins AS (
    INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash, status,
        priority, attempts, max_attempts, progress, cancel_requested, number_results,
        created_at, seq, results_plan)
    SELECT task_uuid, owner, task_type, model, request, request_hash, 'queued', 0, 0,
        max_attempts, 0, false, number_results, created_at, seq, results_plan
    FROM r
    ON CONFLICT (task_uuid) DO NOTHING
    RETURNING seq, owner
),
counted AS (
    INSERT INTO key_queue (owner, shard, queued)
    SELECT owner, {raw.SHARD["postgresql"]}, count(*) FROM ins GROUP BY owner
    ON CONFLICT (owner, shard) DO UPDATE SET queued = key_queue.queued + excluded.queued
),
holes AS (
    INSERT INTO queue_holes (seq)
    SELECT r.seq FROM r WHERE r.seq NOT IN (SELECT seq FROM ins)
    ON CONFLICT DO NOTHING
)
SELECT r.seq, r.seq IN (SELECT seq FROM ins),
    (SELECT pg_notify('openimagine_jobs', '') WHERE EXISTS (SELECT 1 FROM ins))
FROM r ORDER BY r.i
"""  # noqa: S608 - the shard expression is a constant
_RESERVE = "UPDATE queue_counter SET next_seq = next_seq + :n WHERE id = 1 RETURNING next_seq"
_SELECT_JOB = f"""
SELECT {raw.columns(raw.JOB_COLUMNS, "j")}, {raw.columns(raw.RESULT_COLUMNS, "r")}
FROM jobs j LEFT JOIN results r ON r.task_uuid = j.task_uuid
WHERE j.task_uuid = :task_uuid ORDER BY r.idx
"""  # noqa: S608 - the column names are constants
# A queued job's place is its distance from the head of the queue less the holes between
# (numbers of jobs that left the queue): two index probes, whatever the queue's length.
_HEAD = "(SELECT min(seq) FROM jobs WHERE status = 'queued')"
_SELECT_PLACED = Replanned(f"""
SELECT {raw.columns(raw.JOB_COLUMNS, "j")}, {raw.columns(raw.RESULT_COLUMNS, "r")},
    CASE WHEN j.status = 'queued' THEN {_HEAD} END,
    CASE WHEN j.status = 'queued' THEN (SELECT count(*) FROM queue_holes h
        WHERE h.seq >= {_HEAD} AND h.seq < j.seq) END
FROM jobs j LEFT JOIN results r ON r.task_uuid = j.task_uuid
WHERE j.task_uuid = :task_uuid ORDER BY r.idx
""")  # noqa: S608 - the column names are constants

_HOLE = "INSERT INTO queue_holes (seq) VALUES (:s) ON CONFLICT DO NOTHING"

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
    `Conflict`; its unused number becomes a hole."""
    refusals = await _admit(ex, creations)
    admitted = [(new, now) for (new, now, _), no in zip(creations, refusals, strict=True) if not no]
    if not admitted:
        made = []
    elif ex.dialect == "postgresql":
        made = await _create_pg(ex, admitted)
    else:
        made = await _create_sqlite(ex, admitted)
    done = iter(made)
    return [(False, no) if no else next(done) for no in refusals]


async def _admit(ex: Executor, creations: list[Creation]) -> list[QuotaExceeded | None]:
    """Which submits of a batch a quota refuses: per key, in order, a new task past its queue
    limit or its daily budget (a task already stored is never refused: a retried submit
    gets its acknowledgement)."""
    refusals: list[QuotaExceeded | None] = [None] * len(creations)
    by_owner: dict[str, list[int]] = {}
    for i, (new, _, quota) in enumerate(creations):
        if quota.any:
            by_owner.setdefault(new.owner, []).append(i)
    for owner, indices in by_owner.items():
        await _admit_owner(ex, owner, creations, indices, refusals)
    return refusals


async def _stored(ex: Executor, creations: list[Creation], indices: list[int]) -> set[str]:
    """Which of these submits' tasks exist already."""
    names = ", ".join(f":t{n}" for n in range(len(indices)))
    params = {f"t{n}": creations[i][0].task_uuid for n, i in enumerate(indices)}
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
    known = await _stored(ex, creations, indices) if quota.daily_budget_usd else set()
    verdicts = _decide(mine, known, quota, queued, spent, now)
    if not quota.daily_budget_usd and any(verdicts):
        known = await _stored(ex, creations, indices)
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
    seqs = await _reserve(ex, len(creations))
    sql, params = _INSERT_JOBS.format(rows=_values(_JOB_ROW, len(creations))), {}
    for i, ((new, now), seq) in enumerate(zip(creations, seqs, strict=True)):
        params.update({f"{k}_{i}": v for k, v in _job_row(new, now, seq).items()})
    inserted = {row[0] for row in await ex.fetchall(sql, params)}
    if inserted:
        ex.wake()
        added: dict[str, int] = {}
        for new, _ in creations:
            if new.task_uuid in inserted:
                added[new.owner] = added.get(new.owner, 0) + 1
        for owner, n in added.items():
            await ex.execute(raw.count_queued_sql(ex.dialect), {"owner": owner, "n": n})
    outcomes: list[tuple[bool, Any]] = []
    for (new, now), seq in zip(creations, seqs, strict=True):
        if new.task_uuid in inserted:
            inserted.discard(new.task_uuid)  # a second submit of it in this batch finds it
            outcomes.append((True, (new.queued(now, seq), new.pending_results(), True)))
        else:
            await ex.execute(_HOLE, {"s": seq})
            outcomes.append(await _existing(ex, new))
    return outcomes


async def _create_pg(ex: Executor, creations: list[tuple[NewJob, float]]) -> list[tuple[bool, Any]]:
    first: dict[str, int] = {}  # a task sent twice in one batch: its first submit inserts
    rows = []
    for i, (new, now) in enumerate(creations):
        if new.task_uuid not in first:
            first[new.task_uuid] = i
            rows.append({"i": i, **_job_row(new, now, 0)})
    sent = await ex.fetchall(_PG_CREATE, {"rows": orjson.dumps(rows).decode()})
    done = {row["i"]: (int(seq), bool(ok)) for row, (seq, ok, _) in zip(rows, sent, strict=True)}
    outcomes: list[tuple[bool, Any]] = []
    for i, (new, now) in enumerate(creations):
        seq, inserted = done.get(i, (0, False))
        if inserted:
            outcomes.append((True, (new.queued(now, seq), new.pending_results(), True)))
        else:
            outcomes.append(await _existing(ex, new))
    return outcomes


async def _reserve(ex: Executor, n: int) -> list[int]:
    """`n` new queue numbers from the counter row (SQLite: one writer at a time)."""
    reserved = await ex.fetchone(_RESERVE, {"n": n})
    assert reserved is not None  # noqa: S101 - the counter row exists (migration 0003)
    return list(range(int(reserved[0]) - n, int(reserved[0])))


async def _existing(ex: Executor, new: NewJob) -> tuple[bool, Any]:
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


def _job_row(new: NewJob, now: float, seq: int) -> dict[str, Any]:
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
    }  # on PostgreSQL `seq` is ignored: the statement takes it from the sequence


async def get(ex: Executor, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
    """A job and its results (owner None: any owner)."""
    rows = await ex.fetchall(_SELECT_JOB, {"task_uuid": task_uuid})
    return _job_of(rows, task_uuid, owner)


async def get_placed(
    ex: Executor, task_uuid: str, owner: str | None
) -> tuple[Job, list[Result], int | None] | None:
    """A job, its results and, while it is queued, how many jobs are claimed before it."""
    rows = await ex.fetchall(_SELECT_PLACED, {"task_uuid": task_uuid})
    found = _job_of(rows, task_uuid, owner)
    if found is None:
        return None
    job, results = found
    head, holes = rows[0][-2:]
    place = None if head is None or job.seq < head else int(job.seq - head - (holes or 0))
    return job, results, place


def _job_of(rows: list[Row], task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
    if not rows:
        return None
    job = raw.job_from(rows[0])
    if owner is not None and job.owner != owner:
        return None
    start, end = len(raw.JOB_COLUMNS), len(raw.JOB_COLUMNS) + len(raw.RESULT_COLUMNS)
    finished = [raw.result_from(row[start:end]) for row in rows if row[start] is not None]
    return job, raw.merge(task_uuid, raw.plan_from(rows[0][raw.PLAN]), finished)

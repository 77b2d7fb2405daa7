"""A worker's completions on PostgreSQL in one statement each, from what its claim returned.

perf: the general path (`queue._complete`, `queue._finish`) reads the job back under its lease
and writes the result, its usage entry and its deliveries one statement at a time: five round
trips a result. A worker already holds the job from its claim (`Leased`), and the job's
owner, size and results plan never change, so the rows can be written by one statement whose
every insert is conditional on the lease check at its head: it changes nothing unless the
worker still holds the lease. The last result's statement ends the job too, so a job of one
result costs its worker two statements in all: the claim and this. Where the statement cannot
decide (results still unfinished, or no row because the lease is lost), the caller takes the
general path, which gives the same answer as before.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openimagine.domain.deliveries import DeliveryStatus, NewDelivery, destination
from openimagine.domain.jobs import Claim, Job, ResultUpdate
from openimagine.domain.usage import UsageEntry
from openimagine.store.sql import raw
from openimagine.store.sql.executor import Executor


@dataclass(frozen=True, slots=True)
class Leased:
    """A claimed job as its claim returned it: what a completion needs to know of it."""

    job: Job
    plan: raw.Plan

    @classmethod
    def of(cls, claim: Claim) -> Leased:
        """What `claim` leased."""
        ordered = sorted(claim.results, key=lambda r: r.index)
        return cls(claim.job, [(r.video_uuid, r.seed, r.cost or 0.0) for r in ordered])


# The lease check: a share lock on the job's row while its lease holds (no new row version:
# claims, cancels and the reaper wait for the commit, then see what it did).
_FENCED = (
    "fenced AS (SELECT task_uuid FROM jobs WHERE task_uuid = :task AND lease_token = :token "
    "AND status = 'running' FOR SHARE)"
)
# The lease check that ends the job too: only when every other result has finished.
_ENDED = (
    "fenced AS (UPDATE jobs SET {sets} WHERE task_uuid = :task AND lease_token = :token "
    "AND status = 'running' AND (SELECT count(*) FROM results r WHERE r.task_uuid = :task) "
    "= :others RETURNING task_uuid)"
)
# Parameters typed where they may be NULL: an untyped NULL would be read as text.
_RESULT = (
    f"stored AS (INSERT INTO results ({raw.columns(raw.RESULT_COLUMNS)}) "  # noqa: S608
    "SELECT :video_uuid, task_uuid, :idx, :seed, 'success', :blob_key, :content_type, "
    "CAST(:size_bytes AS bigint), :cost, CAST(:nsfw AS boolean), NULL, NULL, :now, "
    "CAST(:expires_at AS double precision) FROM fenced)"
)
_USAGE = (
    f"billed AS (INSERT INTO usage ({', '.join(UsageEntry.__slots__)}) "  # noqa: S608
    "SELECT :video_uuid, task_uuid, :owner, 'success', :seconds, :width, :height, :cost, "
    ":now FROM fenced)"
)
_DELIVERY_COLUMNS = (
    "id", "task_uuid", "kind", "event", "video_uuid", "url", "host", "status", "attempts",
    "next_attempt_at", "created_at",
)  # fmt: skip
_DELIVERY = (
    "SELECT :id_{i}, task_uuid, :kind_{i}, :event_{i}, CAST(:video_uuid_{i} AS varchar), "
    ":url_{i}, :host_{i}, :status_{i}, 0, :now, :now FROM fenced"
)


@functools.cache
def _complete_sql(deliveries: int, ending: tuple[str, ...] | None) -> str:
    fenced = _FENCED
    if ending is not None:
        fenced = _ENDED.format(sets=", ".join(f"{name} = :end_{name}" for name in ending))
    parts = [fenced, _RESULT, _USAGE]
    if deliveries:
        rows = " UNION ALL ".join(_DELIVERY.format(i=i) for i in range(deliveries))
        columns = ", ".join(_DELIVERY_COLUMNS)
        parts.append(f"delivered AS (INSERT INTO deliveries ({columns}) {rows})")
    return f"WITH {', '.join(parts)} SELECT count(*) FROM fenced"  # noqa: S608 - constant names


def _delivery_params(new: Sequence[NewDelivery]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, d in enumerate(new):
        params.update(
            {
                f"id_{i}": str(uuid.uuid4()),
                f"kind_{i}": d.kind.value,
                f"event_{i}": d.event.value,
                f"video_uuid_{i}": d.video_uuid,
                f"url_{i}": d.url,
                f"host_{i}": destination(d.url),
                f"status_{i}": DeliveryStatus.PENDING.value,
            }
        )
    return params


async def complete(
    ex: Executor,
    leased: Leased,
    token: str,
    update: ResultUpdate,
    new: Sequence[NewDelivery],
    now: float,
    ending: dict[str, Any] | None = None,
) -> bool:
    """Store one successful result, its usage entry and its deliveries, if `token` still holds
    the lease; with `ending` (the job's columns as it ends), end the job too, if every other
    result has finished. Whether it did (False: nothing changed)."""
    job = leased.job
    index = next(i for i, (video, _, _) in enumerate(leased.plan) if video == update.video_uuid)
    _, seed, cost = leased.plan[index]
    spec = job.spec
    params: dict[str, Any] = {
        "task": job.task_uuid,
        "token": token,
        "video_uuid": update.video_uuid,
        "idx": index,
        "seed": seed,
        "blob_key": update.blob_key,
        "content_type": update.content_type,
        "size_bytes": update.size_bytes,
        "cost": cost,
        "nsfw": update.nsfw,
        "now": now,
        "expires_at": update.expires_at,
        "owner": job.owner,
        "seconds": float(spec.seconds),
        "width": spec.width,
        "height": spec.height,
        **_delivery_params(new),
    }
    if ending is not None:
        params.update({f"end_{name}": value for name, value in ending.items()})
        params["others"] = len(leased.plan) - 1
    sql = _complete_sql(len(new), None if ending is None else tuple(ending))
    row = await ex.fetchone(sql, params)
    return row is not None and int(row[0]) == 1


@functools.cache
def _finish_sql(assignments: tuple[str, ...]) -> str:
    sets = ", ".join(assignments)
    return (
        f"UPDATE jobs SET {sets} WHERE task_uuid = :task AND lease_token = :token "  # noqa: S608
        "AND status = 'running' AND (SELECT count(*) FROM results r WHERE r.task_uuid = :task) "
        ">= :planned RETURNING 1"
    )


async def finish(ex: Executor, leased: Leased, token: str, values: dict[str, Any]) -> bool:
    """End the job with `values` if `token` still holds its lease and every result has
    finished (so none is left to fail); whether it did."""
    params = {**values, "task": leased.job.task_uuid, "token": token}
    params["planned"] = len(leased.plan)
    sql = _finish_sql(tuple(f"{name} = :{name}" for name in values))
    return await ex.fetchone(sql, params) is not None

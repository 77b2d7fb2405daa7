"""Gauges read from the store when `/metrics` is scraped: what every API replica sees alike.

Each is one cheap read, whatever the depth of the queue:
- `openimagine_queue_depth{state, key_class}`: jobs queued (from the per-key counters the
  store keeps, `key_queue`: one row per key) and running (bounded by the workers), by the
  class of the key that submitted them: `override` when the key has a limit of its own (set
  with `openimagine keys limits`), else `default` (the server's quota settings).
- `openimagine_queue_keys{state}`: keys with jobs queued, and running.
- `openimagine_workers{state}`: workers whose heartbeat is fresh, by state: `loading`,
  `ready` (idle), `busy` (holding a running job's lease).
- `openimagine_deliveries_pending{kind}`: webhooks and uploads waiting to be sent.
- `openimagine_store_up`: 1 when these were read, 0 when the store did not answer (the
  process's own metrics are still served).

The reads use their own small engine (one connection), so a scrape never waits for the
request path's pool nor holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import anyio
import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric

from openimagine.domain.deliveries import DeliveryStatus
from openimagine.domain.jobs import JobStatus
from openimagine.domain.records import WorkerState
from openimagine.store.sql.database import normalize_url
from openimagine.store.sql.tables import api_keys, deliveries, jobs, key_queue, workers

log = logging.getLogger("openimagine.metrics")

FRESH_S = 30.0  #: a worker whose heartbeat is older is not counted (as /health)
BUSY = "busy"


def _key_class() -> sa.ColumnElement[str]:
    k = api_keys.c
    own = sa.or_(
        k.max_queued.is_not(None),
        k.max_running.is_not(None),
        k.requests_per_minute.is_not(None),
        k.daily_budget_usd.is_not(None),
    )
    return sa.case((own, "override"), else_="default")


def _by_class(conn: sa.Connection, per_owner: sa.Subquery) -> list[tuple[str, int, int]]:
    """(key class, jobs, keys) over a subquery of (owner, n) with n > 0."""
    cls = _key_class().label("cls")
    q = (
        sa.select(cls, sa.func.sum(per_owner.c.n), sa.func.count())
        .select_from(per_owner.outerjoin(api_keys, api_keys.c.id == per_owner.c.owner))
        .group_by(cls)
    )
    return [(str(c), int(n), int(k)) for c, n, k in conn.execute(q)]


def _queued(conn: sa.Connection) -> list[tuple[str, int, int]]:
    # A key's count is spread over shards (some may be negative): summed per key first.
    total = sa.func.sum(key_queue.c.queued)
    per_owner = (
        sa.select(key_queue.c.owner.label("owner"), total.label("n"))
        .group_by(key_queue.c.owner)
        .having(total > 0)
        .subquery()
    )
    return _by_class(conn, per_owner)


def _running(conn: sa.Connection) -> list[tuple[str, int, int]]:
    per_owner = (
        sa.select(jobs.c.owner.label("owner"), sa.func.count().label("n"))
        .where(jobs.c.status == JobStatus.RUNNING.value)
        .group_by(jobs.c.owner)
        .subquery()
    )
    return _by_class(conn, per_owner)


def _workers(conn: sa.Connection, since: float) -> dict[str, int]:
    holders = {
        str(owner)
        for (owner,) in conn.execute(
            sa.select(jobs.c.lease_owner).where(jobs.c.status == JobStatus.RUNNING.value)
        )
    }
    rows = conn.execute(
        sa.select(workers.c.id, workers.c.state).where(
            workers.c.heartbeat_at >= since, workers.c.state != WorkerState.STOPPED.value
        )
    )
    counts = dict.fromkeys([WorkerState.LOADING.value, WorkerState.READY.value, BUSY], 0)
    for worker_id, state in rows:
        key = BUSY if worker_id in holders else str(state)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _pending(conn: sa.Connection) -> list[tuple[str, int]]:
    q = (
        sa.select(deliveries.c.kind, sa.func.count())
        .where(deliveries.c.status == DeliveryStatus.PENDING.value)
        .group_by(deliveries.c.kind)
    )
    return [(str(kind), int(n)) for kind, n in conn.execute(q)]


class StoreGauges:
    """Reads the gauges above from the store at `url`.

    Args:
        url: The store's SQLAlchemy URL (SQLite or PostgreSQL).
    """

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(
            normalize_url(url), pool_size=1, max_overflow=0, pool_pre_ping=True
        )

    async def read(self) -> list[Metric]:
        """The gauges now; only `openimagine_store_up 0` when the store fails (logged)."""
        try:
            return await anyio.to_thread.run_sync(self._read)
        except Exception:
            log.warning("metrics: the store could not be read", exc_info=True)
            return [_gauge("openimagine_store_up", "Whether the store answered.", [], [((), 0)])]

    def _read(self) -> list[Metric]:
        with self._engine.connect() as conn:
            queued, running = _queued(conn), _running(conn)
            fresh = _workers(conn, time.time() - FRESH_S)
            pending = _pending(conn)
        return [
            _gauge(
                "openimagine_queue_depth",
                "Jobs queued and running, by the class of their key (override: the key has "
                "limits of its own; default: the server's).",
                ["state", "key_class"],
                _depth(queued, running),
            ),
            _gauge(
                "openimagine_queue_keys",
                "Keys with jobs queued, and running.",
                ["state"],
                [(("queued",), _keys(queued)), (("running",), _keys(running))],
            ),
            _gauge(
                "openimagine_workers",
                "Workers with a fresh heartbeat: loading, ready (idle) or busy (running a job).",
                ["state"],
                [((state,), n) for state, n in fresh.items()],
            ),
            _gauge(
                "openimagine_deliveries_pending",
                "Webhooks and uploads waiting to be sent.",
                ["kind"],
                _with_zeros(pending, ("webhook", "upload")),
            ),
            _gauge("openimagine_store_up", "Whether the store answered.", [], [((), 1)]),
        ]

    def close(self) -> None:
        """Close the connection."""
        self._engine.dispose()


def _depth(
    queued: list[tuple[str, int, int]], running: list[tuple[str, int, int]]
) -> list[tuple[tuple[str, ...], float]]:
    out: list[tuple[tuple[str, ...], float]] = []
    for state, rows in (("queued", queued), ("running", running)):
        found = {cls: n for cls, n, _ in rows}
        out += [((state, cls), found.get(cls, 0)) for cls in ("default", "override")]
    return out


def _keys(rows: list[tuple[str, int, int]]) -> int:
    return sum(k for _, _, k in rows)


def _with_zeros(
    rows: list[tuple[str, int]], names: Sequence[str]
) -> list[tuple[tuple[str, ...], float]]:
    found = dict(rows)
    every = [*names, *(n for n in found if n not in names)]
    return [((name,), found.get(name, 0)) for name in every]


def _gauge(
    name: str,
    doc: str,
    labels: list[str],
    samples: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family

"""PostgreSQL: reads of the head of the queue are planned for the table as it is now.

psycopg prepares a statement it has run five times, and the server keeps the plan of a
statement without parameters until the table's statistics change. Planned while the queue was
empty, a read of its head would then scan every queued job on each poll and claim.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_DSN
from tests.contract.test_store import new_job

from openimagine.domain.jobs import Capability
from openimagine.store.sql import SqlStore, capabilities, queue, submits
from openimagine.store.sql.executor import Replanned, SyncExecutor, dialect_sql
from openimagine.store.sql.pg_async import QUEUE_PLANS, AsyncPgExecutor, _with_hot_plans

pytestmark = pytest.mark.postgres

FRESH = Replanned("SELECT 1 AS fresh")
PLAIN = "SELECT 2 AS plain"


def _prepared(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements")}


async def test_replanned_sql_is_never_prepared_on_the_event_loop() -> None:
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        ex = AsyncPgExecutor(conn)
        for _ in range(8):
            assert await ex.fetchone(FRESH) == (1,)
            assert await ex.fetchone(PLAIN) == (2,)
        cursor = await conn.execute("SELECT statement FROM pg_prepared_statements")
        prepared = {row[0] for row in await cursor.fetchall()}
    assert PLAIN in prepared  # psycopg's default: the hot statements skip parsing
    assert str(FRESH) not in prepared


async def test_replanned_sql_is_never_prepared_on_a_thread() -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        ex = SyncExecutor(conn, "postgresql")
        for _ in range(8):
            assert await ex.fetchone(FRESH) == (1,)
            assert await ex.fetchone(PLAIN) == (2,)
        prepared = _prepared(conn)
    assert PLAIN in prepared
    assert str(FRESH) not in prepared


async def test_a_poll_planned_on_an_empty_queue_still_probes_indexes_when_it_is_deep(
    pg_schema: str,
) -> None:
    """The submit and poll connections prepare their statements once, whatever the queue
    holds then; they never plan a sequential scan, so a deep queue is still probed."""
    store = SqlStore(pg_schema)
    await store.migrate()
    try:
        first = new_job()
        await store.jobs.create(first)
        conninfo = _with_hot_plans(pg_schema.replace("postgresql+psycopg", "postgresql"))
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")  # planned now, kept
            conn.execute(f"PREPARE poll(text) AS {_poll_sql()}")
            conn.execute(f"EXECUTE poll('{first.task_uuid}')")  # its plan is made now
            for _ in range(30):
                await asyncio.gather(*(store.jobs.create(new_job()) for _ in range(100)))
            explain = f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE poll('{first.task_uuid}')"
            plan = conn.execute(explain).fetchone()[0][0]["Plan"]  # type: ignore[index]
        assert max(_rows(plan)) <= 2  # probes: no step reads the 3,001 queued jobs
        found = await store.jobs.get_placed(first.task_uuid, None)
        assert found is not None and found[2] == 0
    finally:
        await store.close()


BIG = {"width": 1280, "height": 720, "num_frames": 360}
SMALL = {"width": 848, "height": 480, "num_frames": 48}


async def test_a_claim_by_capability_reads_the_queue_in_order_and_passes_over_the_rest(
    pg_schema: str,
) -> None:
    """A worker's claim, prepared on a queue connection (`QUEUE_PLANS`) while the queue was
    shallow, is still the index scan of `ix_jobs_turn` in claim order once it is deep: the
    capability's filter passes over the jobs it does not fit, with no sort and no bitmap."""
    store = SqlStore(pg_schema)
    await store.migrate()
    small_gpu = Capability(("xai:grok-imagine@video",), 848 * 480 * 48)
    params = {"worker": "w", "token": "t", "expires": 2e9, "now": 1e9, "max_running": 0}
    params.update(capabilities.params(small_gpu))
    text, names = _positional(queue._claim_pg(capabilities.shape(small_gpu)))
    types = {"now": "float8", "expires": "float8", "max_running": "int8"}
    types["max_pixel_frames"] = "int8"
    try:
        await store.jobs.create(new_job(**BIG))
        url = pg_schema.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(_with_hot_plans(url, QUEUE_PLANS), autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")  # planned now, kept
            signature = ", ".join(types.get(n, "text") for n in names)
            conn.execute(f"PREPARE claim({signature}) AS {text}")
            cursor = psycopg.ClientCursor(conn)  # EXECUTE takes no server-side parameters
            execute = f"EXECUTE claim({', '.join('%s' for _ in names)})"
            values = [params[n] for n in names]
            cursor.execute(f"EXPLAIN {execute}", values)  # its plan is made now
            for _ in range(3):
                await asyncio.gather(*(store.jobs.create(new_job(**BIG)) for _ in range(100)))
            await store.jobs.create(new_job(**SMALL))  # behind 301 big jobs of its key
            with conn.transaction(force_rollback=True):
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}", values)
                plan = cursor.fetchone()[0][0]["Plan"]  # type: ignore[index]
        scans = [n for n in _nodes(plan) if n.get("Relation Name") == "jobs"]
        heads = [n for n in scans if n.get("Index Name") == "ix_jobs_turn"]
        assert {n["Node Type"] for n in _nodes(plan)}.isdisjoint(
            {"Sort", "Bitmap Heap Scan", "Bitmap Index Scan", "Seq Scan"}
        )
        assert [n["Index Cond"] for n in heads] == [
            "((status)::text = 'running'::text)", "((status)::text = 'queued'::text)",
        ]  # fmt: skip
        assert heads[1]["Actual Rows"] == 1 and heads[1]["Rows Removed by Filter"] == 301
    finally:
        await store.close()


def _positional(sql: str) -> tuple[str, list[str]]:
    """`sql` with `$n` parameters (for PREPARE), and the names in their order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, dialect_sql(sql, "postgresql")), names


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's steps, the step's and below."""
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


def _rows(node: dict[str, Any]) -> list[int]:
    """The rows each step of a plan returned (one loop's worth), the step's and below."""
    below = [n for child in node.get("Plans", []) for n in _rows(child)]
    return [int(node["Actual Rows"]), *below]


def _poll_sql() -> str:
    return str(submits._SELECT_PLACED["postgresql"]).replace(":task_uuid", "$1")

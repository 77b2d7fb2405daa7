"""PostgreSQL: reads of the head of the queue are planned for the table as it is now.

psycopg prepares a statement it has run five times, and the server keeps the plan of a
statement without parameters until the table's statistics change. Planned while the queue was
empty, a read of its head would then scan every queued job on each poll and claim.
"""

from __future__ import annotations

import psycopg
import pytest
from tests.conftest import PG_DSN

from openimagine.store.sql.executor import Replanned, SyncExecutor
from openimagine.store.sql.pg_async import AsyncPgExecutor

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

"""What the statements of the hot path run on: one async interface over three ways to reach
the database, so that each statement is written once.

- `SyncExecutor` wraps a blocking DBAPI connection (sqlite3, or psycopg under SQLAlchemy in a
  thread): its methods never suspend, so a hot function can also be run to completion from
  synchronous code with `drive`.
- `pg_async.AsyncPgExecutor` awaits psycopg's async connection on the event loop.

SQL is written with `:name` parameters and rewritten once for psycopg's `%(name)s`.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Row = Sequence[Any]
_PARAM = re.compile(r"(?<![:\w]):([a-z_0-9]+)")


class Replanned(str):
    """SQL whose best plan depends on how many rows a table holds now, like a read of the
    head of the queue. psycopg runs a statement it has seen five times as a prepared one, and
    PostgreSQL keeps the plan of a statement without parameters until the table's statistics
    change: planned while the queue was empty, it scans every queued job once there are many.
    Replanned SQL is never prepared on PostgreSQL (planning it costs ~0.05 ms)."""

    __slots__ = ()


_FRESH: dict[str, Any] = {"prepare": False}
_DEFAULT: dict[str, Any] = {}


@functools.cache
def dialect_sql(sql: str, dialect: str) -> str:
    """`sql` with parameters in the dialect's driver style."""
    return _PARAM.sub(r"%(\1)s", sql) if dialect == "postgresql" else sql


def driver_options(sql: str, dialect: str) -> dict[str, Any]:
    """Keyword arguments for the driver's `execute` of `sql`: psycopg's `prepare=False` for
    `Replanned` SQL on PostgreSQL, else none."""
    return _FRESH if dialect == "postgresql" and isinstance(sql, Replanned) else _DEFAULT


class Executor(Protocol):
    """Runs statements inside the caller's transaction."""

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        ...

    async def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row `sql` returns."""
        ...

    async def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row `sql` returns."""
        ...

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run `sql`, which returns no rows."""
        ...

    def wake(self) -> None:
        """Wake idle workers once the transaction commits."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[object]:
        """The statements in the block commit together (on a connection in autocommit mode, a
        transaction; inside the caller's transaction already, nothing more)."""
        ...


class SyncExecutor:
    """A blocking DBAPI connection (`driver`), behind the async interface."""

    def __init__(self, driver: Any, dialect: str) -> None:
        self.driver = driver
        self.dialect = dialect
        self.woken = False

    def cursor(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run `sql`; the driver's cursor."""
        options = driver_options(sql, self.dialect)
        return self.driver.execute(dialect_sql(sql, self.dialect), params or {}, **options)

    async def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row `sql` returns."""
        rows: list[Row] = self.cursor(sql, params).fetchall()
        return rows

    async def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row `sql` returns."""
        row: Row | None = self.cursor(sql, params).fetchone()
        return row

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run `sql`, which returns no rows."""
        self.cursor(sql, params)

    def wake(self) -> None:
        """Remember to wake workers; the transaction's owner does it after the commit."""
        self.woken = True

    def atomic(self) -> AbstractAsyncContextManager[object]:
        """Nothing to open: the caller's transaction holds every statement already."""
        return contextlib.nullcontext()


def drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a hot function on a `SyncExecutor` to completion, synchronously."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a statement suspended: drive() needs a SyncExecutor")

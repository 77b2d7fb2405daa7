"""Which failures of the store are passing ones: the database or the disk was away for a
while, as opposed to a defect that would fail again on every retry; and how a loop waits one
out (`Backoff`, `retry_transient`)."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import sqlalchemy.exc

T = TypeVar("T")

# SQLSTATE classes of a connection that is gone: 08 (connection exception) and 57P (the
# server shut down or is starting: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
# cannot_connect_now).
_LOST = ("08", "57P")


def transient(exc: BaseException) -> bool:
    """Whether `exc` is an outage worth waiting out (a lost or refused connection, a locked
    database, a full or failing disk), not a defect."""
    if isinstance(exc, OSError | sqlite3.OperationalError):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # SQLite only
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def lost_connection(exc: BaseException) -> bool:
    """Whether a PostgreSQL statement failed because its connection was dead or could not be
    made (the server restarted, or is down): nothing of it committed, and a fresh connection
    may succeed at once. A pool that found no connection in time is not one: trying again at
    once would only wait as long again."""
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:  # SQLite only
        return False
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, PoolTimeout):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(_LOST)


class Backoff:
    """How a loop waits out an outage of the store: exponential delays from `first_s` up to
    `max_s`, each jittered down by up to half (so that many workers do not retry in step),
    and a log line when the outage starts, every `report_s` while it lasts, and when it ends.

    Args:
        what: What is retried, for the log.
        logger: Where the lines go.
        first_s: The first delay.
        max_s: The longest delay.
        report_s: How often a continuing outage is logged again.
    """

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        first_s: float = 0.1,
        max_s: float = 2.0,
        report_s: float = 30.0,
    ) -> None:
        self.what = what
        self.log = logger
        self.first_s = first_s
        self.max_s = max(first_s, max_s)
        self.report_s = report_s
        self._failures = 0
        self._since = 0.0  # monotonic time of the outage's first failure
        self._reported = 0.0

    @property
    def failing(self) -> bool:
        """Whether the last try failed."""
        return self._failures > 0

    def failed(self, exc: BaseException) -> float:
        """Note a failed try; how long to wait before the next."""
        now = time.monotonic()
        if self._failures == 0:
            self._since = self._reported = now
            self.log.warning("%s: the store is unavailable (%s); retrying", self.what, exc)
        elif now - self._reported >= self.report_s:
            self._reported = now
            self.log.warning(
                "%s: the store is still unavailable after %.0f s (%s)",
                self.what,
                now - self._since,
                exc,
            )
        delay = min(self.max_s, self.first_s * 2.0 ** min(self._failures, 30))
        self._failures += 1
        # Jitter spreads retries; it is no secret. S311: not for cryptography.
        return delay * random.uniform(0.5, 1.0)  # noqa: S311

    def succeeded(self) -> None:
        """Note a try that worked: the next failure starts over from `first_s`."""
        if self._failures:
            self.log.info(
                "%s: the store is back after %.1f s", self.what, time.monotonic() - self._since
            )
        self._failures = 0


def _never() -> bool:
    return False


async def retry_transient(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    give_up: Callable[[], bool] = _never,
) -> T:
    """`await call()`, tried again after each transient failure (see `transient`) with
    `backoff`'s delays, until it succeeds, fails otherwise (raised), or `give_up()` says to
    stop (the last transient error is raised)."""
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not transient(exc) or give_up():
                raise
            await anyio.sleep(backoff.failed(exc))
        else:
            backoff.succeeded()
            return result

"""Which failures of the store are passing ones: the database or the disk was away for a
while, as opposed to a defect that would fail again on every retry."""

from __future__ import annotations

import sqlite3

import sqlalchemy.exc


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

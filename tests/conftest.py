"""Shared fixtures: settings on a temp data dir, and store URLs for both backends."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from openimagine.config import Settings
from openimagine.store.memory import MemoryStore
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore

ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("OPENIMAGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Folders apply markers (LitServe style): tests/e2e → e2e, tests/gpu → gpu."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
        if "gpu" in parts:
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data dir (SQLite store, local blobs)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards; returns an async SQLAlchemy URL."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    host_part = PG_DSN.split("://", 1)[1]
    yield f"postgresql+psycopg://{host_part}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests in memory, on SQLite (a temp file) and on PostgreSQL (a temp schema)."""
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_schema"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TaskStore]:
    """A migrated store on each backend."""
    s: TaskStore = MemoryStore() if store_url == "memory" else SqlStore(store_url)
    await s.migrate()
    yield s
    await s.close()

"""The embedded store's write-ahead log stays bounded under a steady stream of submits.

A passive checkpoint never catches up with a writer that never pauses, so SQLite never starts
the log over; before the checkpointer forced a restart, the log of a busy server grew by about
10 kB a submit without end (200 MB in a minute of `wrk`), and every read searched its index.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
from pathlib import Path

from tests.contract.test_store import SPEC, new_job

from openimagine.domain.generation import Mode
from openimagine.store.sql import SqlStore

_LIMIT = 8 << 20  # the checkpointer starts the log over past this (store/sql/inline.py)


async def _submit_steadily(store: SqlStore, batches: int, per_batch: int) -> None:
    spec = dataclasses.replace(SPEC, mode=Mode.T2V, video=None, source_seconds=None)
    for _ in range(batches):
        jobs = [dataclasses.replace(new_job(), spec=spec) for _ in range(per_batch)]
        await asyncio.gather(*(store.jobs.create(job) for job in jobs))


def test_the_log_starts_over_while_submits_never_pause(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    wal = Path(f"{path}-wal")
    largest = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal largest
        while not stop.wait(0.01):
            if wal.exists():
                largest = max(largest, os.path.getsize(wal))

    async def main() -> None:
        store = SqlStore(f"sqlite:///{path}", pool_size=2)
        await store.migrate()
        try:
            # About 8,000 submits: some 60 MB of log frames in all, several times the limit.
            await _submit_steadily(store, batches=400, per_batch=20)
        finally:
            await store.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        watcher.join()

    # At most the threshold and what a few checks' worth of submits add on top (these come
    # faster than any server's), never the 50 MB and more all of them wrote.
    assert largest <= 2 * _LIMIT, f"the log grew to {largest / 2**20:.0f} MiB"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (8000,)
    finally:
        conn.close()

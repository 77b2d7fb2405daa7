"""`MemoryStore`: the whole `TaskStore` in one process's memory.

For tests and demos (`--store memory`): nothing survives the process, and only one process
can use it. It keeps the contract of the SQL store exactly (the same suite runs against both):
idempotent creates, claim order, lease fencing, reaping, delivery leases. Every operation runs
without awaiting in between, so on one event loop each is atomic, as a transaction is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from openimagine.store.memory.jobs import MemoryJobs, MemoryQueue
from openimagine.store.memory.records import (
    MemoryKeys,
    MemoryMedia,
    MemoryOutbox,
    MemorySweep,
    MemoryUsage,
    MemoryWorkers,
)
from openimagine.store.memory.state import State

__all__ = ["MemoryStore"]


class MemoryStore:
    """Every part of the store, in memory."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._state = State(clock=clock)
        self.jobs = MemoryJobs(self._state)
        self.queue = MemoryQueue(self._state)
        self.outbox = MemoryOutbox(self._state)
        self.keys = MemoryKeys(self._state)
        self.media = MemoryMedia(self._state)
        self.workers = MemoryWorkers(self._state)
        self.sweep = MemorySweep(self._state)
        self.usage = MemoryUsage(self._state)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock every timestamp and lease is read from."""
        return self._state.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._state.clock = clock

    async def migrate(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

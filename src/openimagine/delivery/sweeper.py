"""The TTL sweeper: deletes result files once every URL to them has expired.

A result has one URL, whose expiry its task's `ttl` set; once it has passed, no link to the
file can work, so the file only costs storage. Files are deleted before their rows are
updated: a crash in between leaves a row pointing at a missing file (whose URL had expired
anyway), never a file that no row remembers.
"""

from __future__ import annotations

import logging

import anyio

from openimagine.delivery.blobs import BlobStore
from openimagine.store.protocols import SweepStore

log = logging.getLogger("openimagine.sweeper")


class Sweeper:
    """Deletes expired result blobs, `batch` at a time, every `interval_s`."""

    def __init__(
        self, sweep: SweepStore, blobs: BlobStore, *, interval_s: float, batch: int = 200
    ) -> None:
        self.store = sweep
        self.blobs = blobs
        self.interval_s = interval_s
        self.batch = batch

    async def sweep(self) -> int:
        """Delete every expired blob now; returns how many results were swept."""
        swept = 0
        while True:
            expired = await self.store.expired(self.batch)
            if not expired:
                return swept
            for _, key in expired:
                await anyio.to_thread.run_sync(self.blobs.delete, key)
            await self.store.forget([video_uuid for video_uuid, _ in expired])
            swept += len(expired)

    async def run(self) -> None:
        """Sweep forever; a failing sweep is logged and tried again next interval."""
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    log.info("deleted %d expired result files", swept)
            except Exception:
                log.exception("sweep failed")
            await anyio.sleep(self.interval_s)

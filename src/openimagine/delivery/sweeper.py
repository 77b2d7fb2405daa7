"""The TTL sweeper: deletes result files once every URL to them has expired, and inputs once
they have expired and no queued or running job reads them.

A result has one URL, whose expiry its task's `ttl` set; once it has passed, no link to the
file can work, so the file only costs storage. Files are deleted before their rows are
updated: a crash in between leaves a row pointing at a missing file (whose URL had expired
anyway), never a file that no row remembers. A result that a queued or running
video-to-video job reads as its source keeps its file until that job has ended.

An input expires `media_ttl_s` after its upload or last use (`fetched_ttl_s` after the
submit that fetched it). An expired input cannot be used again (the store refuses to renew
it), and one that a queued or running job names is held back, so no job loses an input it
has yet to read.
"""

from __future__ import annotations

import logging

import anyio

from openimagine.delivery.blobs import BlobStore
from openimagine.store.errors import Backoff, transient
from openimagine.store.protocols import SweepStore

log = logging.getLogger("openimagine.sweeper")

# How long an expired input that a job still uses is kept before it is looked at again:
# perf, a long queue's inputs are checked a few times an hour, not on every sweep.
IN_USE_HOLD_S = 600.0


class Sweeper:
    """Deletes expired result and input blobs, `batch` at a time, every `interval_s`."""

    def __init__(
        self,
        sweep: SweepStore,
        blobs: BlobStore,
        *,
        interval_s: float,
        batch: int = 200,
        hold_s: float = IN_USE_HOLD_S,
    ) -> None:
        self.store = sweep
        self.blobs = blobs
        self.interval_s = interval_s
        self.batch = batch
        self.hold_s = hold_s

    async def sweep(self) -> int:
        """Delete every expired blob now; returns how many results and inputs were swept."""
        return await self.sweep_results() + await self.sweep_inputs()

    async def sweep_results(self) -> int:
        """Delete the files of results whose URLs have expired; returns how many."""
        swept = 0
        while True:
            expired = await self.store.expired(self.batch)
            if not expired:
                return swept
            for _, key in expired:
                await anyio.to_thread.run_sync(self.blobs.delete, key)
            await self.store.forget([video_uuid for video_uuid, _ in expired])
            swept += len(expired)

    async def sweep_inputs(self) -> int:
        """Delete expired inputs that no unfinished job uses, file first; returns how many."""
        swept = 0
        while True:
            expired = await self.store.expired_media(self.batch, self.hold_s)
            if not expired:
                return swept
            for _, key in expired:
                await anyio.to_thread.run_sync(self.blobs.delete, key)
            await self.store.forget_media([media_uuid for media_uuid, _ in expired])
            swept += len(expired)

    async def run(self) -> None:
        """Sweep forever; a failing sweep is logged and tried again: after a store outage
        with backoff (at most `interval_s` apart), after anything else next interval."""
        backoff = Backoff("sweeper", log, first_s=min(1.0, self.interval_s), max_s=self.interval_s)
        while True:
            try:
                swept = await self.sweep()
            except Exception as exc:
                if not transient(exc):
                    log.exception("sweep failed")
                    await anyio.sleep(self.interval_s)
                else:
                    await anyio.sleep(backoff.failed(exc))
                continue
            backoff.succeeded()
            if swept:
                log.info("deleted %d expired files", swept)
            await anyio.sleep(self.interval_s)

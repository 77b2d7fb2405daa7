"""Inputs at submit, through the real media service, store and files: decoding runs in threads
a few at a time (so many concurrent submits of large images cannot take all the memory, nor
stall the server), and an input fetched for a task lives as long as the task needs it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.contract.test_store import new_job
from tests.media_factory import data_uri, image_bytes

from openimagine.config import InputSettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.sweeper import Sweeper
from openimagine.domain.jobs import JobStatus
from openimagine.domain.records import MediaKind
from openimagine.domain.requests import MediaInput
from openimagine.service import media as media_module
from openimagine.service.media import SUBMIT_GRACE_S, MediaService
from openimagine.store.sql import SqlStore

FRAME = "inputs.frameImages"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await s.migrate()
    yield s
    await s.close()


class Watch:
    """Wraps a function run in threads: how many ran at once at most, and on which threads."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.running = self.peak = 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.get_ident())
        try:
            time.sleep(0.05)  # a large input takes a while: let the others pile up
            return self.fn(*args)
        finally:
            with self._lock:
                self.running -= 1


async def test_inputs_decode_off_the_event_loop_at_most_n_at_once(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    images, inline = Watch(media_module.inspect_image), Watch(media_module.decode_inline)
    monkeypatch.setattr(media_module, "inspect_image", images)
    monkeypatch.setattr(media_module, "decode_inline", inline)
    limits = InputSettings(decode_concurrency=2)
    service = MediaService(store.media, store.jobs, LocalBlobStore(tmp_path / "blobs"), limits)
    sources = [
        MediaInput(data_uri(image_bytes(64, 64, seed=i), "image/png"), FRAME) for i in range(6)
    ]

    items = await asyncio.gather(*(service.load("k1", s, MediaKind.IMAGE) for s in sources))

    assert len({item.media_uuid for item in items}) == 6  # every one stored
    assert images.peak == 2 and inline.peak <= 2  # never more at once than allowed
    loop = threading.get_ident()
    assert loop not in images.threads and loop not in inline.threads


async def test_an_input_fetched_for_a_task_lives_while_the_task_needs_it(
    store: SqlStore, tmp_path: Path
):
    now = [1000.0]
    store.clock = lambda: now[0]
    blobs = LocalBlobStore(tmp_path / "blobs")
    limits = InputSettings(fetched_ttl_s=60)
    service = MediaService(store.media, store.jobs, blobs, limits, clock=lambda: now[0])
    png = data_uri(image_bytes(64, 64), "image/png")
    item = await service.load("k1", MediaInput(png, FRAME), MediaKind.IMAGE)
    assert item.expires_at == 1000.0 + max(60, SUBMIT_GRACE_S)  # outlives its own submit
    job = new_job(frame_image=item.blob_key)
    await store.jobs.create(job)
    sweeper = Sweeper(store.sweep, blobs, interval_s=60, hold_s=600)

    now[0] = 5000.0  # long past its TTL, but its task is still queued
    assert await sweeper.sweep() == 0 and blobs.local_path(item.blob_key) is not None

    claim = await store.queue.claim("w1", 60)
    assert claim is not None
    await store.queue.finish(job.task_uuid, claim.token, JobStatus.SUCCEEDED)
    now[0] += 601  # the task has ended: the input goes at the next look
    assert await sweeper.sweep() == 1 and blobs.local_path(item.blob_key) is None

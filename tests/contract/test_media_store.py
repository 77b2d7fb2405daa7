"""Inputs' lifetime and a key's stored bytes, on each store backend with real files: expired
inputs lose their rows and files unless a queued or running job still reads them, an expired
input is never renewed, a key's inputs never pass its byte cap, and a key's standing against
its quotas reads back what its submits used."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import pytest

from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.sweeper import Sweeper
from openimagine.domain.jobs import JobStatus
from openimagine.domain.quotas import DAY_S, Admission
from openimagine.domain.records import MediaItem, MediaKind
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore
from tests.contract.test_store import new_job, update_for

HOLD = 600.0


def media(owner: str = "k1", *, size: int = 100, expires_at: float | None = 2000.0) -> MediaItem:
    media_uuid = str(uuid.uuid4())
    return MediaItem(
        media_uuid=media_uuid,
        owner=owner,
        kind=MediaKind.IMAGE,
        blob_key=f"inputs/{media_uuid}.png",
        content_type="image/png",
        size_bytes=size,
        width=64,
        height=64,
        duration_s=None,
        created_at=1000.0,
        expires_at=expires_at,
    )


@pytest.fixture
def clock(store: TaskStore) -> list[float]:
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    return now


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def stored(store: TaskStore, blobs: LocalBlobStore, item: MediaItem) -> MediaItem:
    blobs.put_bytes(item.blob_key, b"png bytes")
    assert await store.media.add(item)
    return item


def on_disk(blobs: LocalBlobStore, item: MediaItem) -> bool:
    return blobs.local_path(item.blob_key) is not None


async def test_expired_inputs_lose_their_rows_and_files(
    store: TaskStore, blobs: LocalBlobStore, clock: list[float]
):
    soon = await stored(store, blobs, media(expires_at=1100.0))
    later = await stored(store, blobs, media(expires_at=2000.0))
    forever = await stored(store, blobs, media(expires_at=None))
    sweeper = Sweeper(store.sweep, blobs, interval_s=60, batch=1)  # batch 1: the loop goes on

    assert await sweeper.sweep() == 0
    clock[0] = 1200.0
    assert await sweeper.sweep() == 1
    assert await store.media.get(soon.media_uuid, None) is None and not on_disk(blobs, soon)
    assert await store.media.touch(soon.media_uuid, "k1", 60) is None
    assert on_disk(blobs, later) and on_disk(blobs, forever)
    clock[0] = 1e9
    assert await sweeper.sweep() == 1
    assert not on_disk(blobs, later) and on_disk(blobs, forever)
    assert await store.media.get(forever.media_uuid, "k1") == forever


async def test_an_expired_input_a_queued_or_running_job_reads_is_kept_until_the_job_ends(
    store: TaskStore, blobs: LocalBlobStore, clock: list[float]
):
    used = await stored(store, blobs, media(expires_at=1100.0))
    idle = await stored(store, blobs, media(expires_at=1100.0))
    other_key = await stored(store, blobs, media("k2", expires_at=1100.0))
    job = new_job(video=used.blob_key)  # k1's job reads `used`
    await store.jobs.create(job)
    await store.jobs.create(new_job(owner="k3", video=other_key.blob_key))  # not k2's own job
    sweeper = Sweeper(store.sweep, blobs, interval_s=60, hold_s=HOLD)

    clock[0] = 1200.0
    assert await sweeper.sweep() == 2  # `idle` and `other_key`
    assert on_disk(blobs, used) and not on_disk(blobs, idle) and not on_disk(blobs, other_key)
    assert await store.media.get(used.media_uuid, "k1") is not None

    claim = await store.queue.claim("w1", 3600)
    assert claim is not None and claim.job.task_uuid == job.task_uuid
    clock[0] += HOLD + 1  # held once; looked at again, still running
    assert await sweeper.sweep() == 0 and on_disk(blobs, used)

    await store.queue.finish(job.task_uuid, claim.token, JobStatus.SUCCEEDED)
    clock[0] += HOLD + 1
    assert await sweeper.sweep() == 1
    assert not on_disk(blobs, used) and await store.media.get(used.media_uuid, None) is None


async def test_a_result_a_queued_job_reads_as_its_source_keeps_its_file_until_the_job_ends(
    store: TaskStore, blobs: LocalBlobStore, clock: list[float]
):
    earlier = new_job()
    await store.jobs.create(earlier)
    claim = await store.queue.claim("w1", 60)
    assert claim is not None
    update = dataclasses.replace(update_for(earlier.video_uuids[0]), expires_at=1100.0)
    blobs.put_bytes(update.blob_key, b"video bytes")
    await store.queue.complete_result(earlier.task_uuid, claim.token, update)
    await store.queue.finish(earlier.task_uuid, claim.token, JobStatus.SUCCEEDED)
    later = new_job(video=update.blob_key)  # video-to-video from the earlier result
    await store.jobs.create(later)
    sweeper = Sweeper(store.sweep, blobs, interval_s=60)

    clock[0] = 1200.0  # the result's URL has expired, but `later` has yet to read its file
    assert await sweeper.sweep() == 0 and blobs.local_path(update.blob_key) is not None
    claim = await store.queue.claim("w1", 60)
    assert claim is not None and claim.job.task_uuid == later.task_uuid
    await store.queue.finish(later.task_uuid, claim.token, JobStatus.SUCCEEDED)
    assert await sweeper.sweep() == 1 and blobs.local_path(update.blob_key) is None


async def test_a_use_keeps_a_live_input_longer_and_never_revives_an_expired_one(
    store: TaskStore, clock: list[float]
):
    item = media(expires_at=1100.0)
    await store.media.add(item)
    assert await store.media.touch(item.media_uuid, "other", 500) is None  # not theirs

    touched = await store.media.touch(item.media_uuid, "k1", 500)
    assert touched is not None and touched.expires_at == 1500.0
    shorter = await store.media.touch(item.media_uuid, "k1", 10)
    assert shorter is not None and shorter.expires_at == 1500.0  # a use never shortens

    clock[0] = 1501.0
    assert await store.media.touch(item.media_uuid, "k1", 500) is None
    kept = await store.media.get(item.media_uuid, "k1")
    assert kept is not None and kept.expires_at == 1500.0

    forever = media(expires_at=None)
    await store.media.add(forever)
    assert await store.media.touch(forever.media_uuid, "k1", 500) == forever


async def test_a_keys_inputs_never_pass_its_byte_cap(store: TaskStore, clock: list[float]):
    first, second = media(size=100, expires_at=1100.0), media(size=100)
    assert await store.media.add(first, max_owner_bytes=250)
    assert await store.media.add(second, max_owner_bytes=250)
    assert await store.media.stored("k1") == (200, 1100.0)

    refused = media(size=100)
    assert not await store.media.add(refused, max_owner_bytes=250)
    assert await store.media.get(refused.media_uuid, None) is None
    assert await store.media.add(media("k2", size=100), max_owner_bytes=250)  # its own bytes
    assert await store.media.add(media(size=10_000))  # no cap given: none checked

    clock[0] = 1200.0  # `first` expired: its bytes no longer count
    assert (await store.media.stored("k1"))[0] == 10_100
    assert not await store.media.add(media(size=1), max_owner_bytes=10_100)
    assert await store.media.add(media(size=1), max_owner_bytes=10_101)


@pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_concurrent_adds_from_two_processes_stop_exactly_at_the_cap(store_url: str):
    # Two stores on one database stand for two API processes (each with its own writer).
    stores = [SqlStore(store_url), SqlStore(store_url)]
    await stores[0].migrate()
    try:
        for s in stores:  # each opens its connections first (SQLite sets WAL mode on connect)
            await s.media.add(media("warm-up"))
        adds = [
            s.media.add(media(size=100, expires_at=None), max_owner_bytes=550) for s in stores * 10
        ]
        taken = await asyncio.gather(*adds)
        assert sum(taken) == 5
        assert (await stores[0].media.stored("k1"))[0] == 500
    finally:
        for s in stores:
            await s.close()


async def test_standing_reads_a_keys_queue_and_todays_spend(store: TaskStore, clock: list[float]):
    clock[0] = 10 * DAY_S + 100.0
    quota = Admission(max_queued=10, daily_budget_usd=5.0)
    for _ in range(3):
        await store.jobs.create(new_job(), quota)  # $0.30 each
    await store.jobs.create(new_job(owner="k2"), quota)
    assert await store.queue.claim("w1", 60) is not None

    queued, spent = await store.usage.standing("k1", 10)
    assert (queued, spent) in ((2, pytest.approx(0.9)), (3, pytest.approx(0.9)))
    assert queued + (await store.usage.standing("k2", 10))[0] == 3  # one of the four runs
    assert await store.usage.standing("k1", 11) == (queued, 0.0)  # another day: no spend
    assert await store.usage.standing("nobody", 10) == (0, 0.0)

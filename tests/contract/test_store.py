"""One TaskStore contract, run in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from fractions import Fraction
from typing import Any

import pytest

from openimagine.domain.deliveries import (
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    NewDelivery,
)
from openimagine.domain.generation import GenerationJob
from openimagine.domain.jobs import JobStatus, NewJob, ResultStatus, ResultUpdate
from openimagine.domain.records import MediaItem, MediaKind, WorkerInfo, WorkerState
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.errors import Conflict, LeaseLost, NotFound
from openimagine.store.memory import MemoryStore
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore

SPEC = GenerationJob(
    model="xai:grok-imagine@video",
    prompt="a lighthouse",
    mode=Mode.V2V,
    width=848,
    height=480,
    num_frames=162,
    fps=24,
    duration_s=None,
    source_seconds=Fraction(101, 15),
    output_format="MP4",
    output_quality=95,
    ttl_s=3600,
    number_results=1,
    include_cost=True,
    safety_mode=SafetyMode.FAST,
    webhook_url="https://hooks.example.com/x",
    video="inputs/source.mp4",
    reference_images=(),
)


def new_job(n: int = 1, *, owner: str = "k1", h: str = "h1", **spec: Any) -> NewJob:
    return NewJob(
        task_uuid=str(uuid.uuid4()),
        owner=owner,
        task_type="videoInference",
        spec=dataclasses.replace(SPEC, number_results=n, **spec),
        request_hash=h,
        max_attempts=2,
        video_uuids=[str(uuid.uuid4()) for _ in range(n)],
        seeds=[100 + i for i in range(n)],
        costs=[0.3] * n,
    )


def update_for(video_uuid: str) -> ResultUpdate:
    return ResultUpdate(
        video_uuid=video_uuid,
        blob_key=f"videos/{video_uuid}.mp4",
        content_type="video/mp4",
        size_bytes=10,
        nsfw=None,
        expires_at=9e9,
    )


def hook(video_uuid: str | None = None) -> NewDelivery:
    event = DeliveryEvent.RESULT_READY if video_uuid else DeliveryEvent.TASK_FAILED
    return NewDelivery(DeliveryKind.WEBHOOK, event, "http://127.0.0.1:1/hook", video_uuid)


async def test_create_is_idempotent_and_conflicts_on_a_different_request(store: TaskStore):
    nj = new_job(2)
    job, results, created = await store.jobs.create(nj)
    assert created and job.status is JobStatus.QUEUED and len(results) == 2
    assert [r.seed for r in results] == [100, 101]
    assert job.spec == nj.spec  # the resolved request round-trips exactly
    again, results2, created2 = await store.jobs.create(nj)
    assert not created2 and again.task_uuid == job.task_uuid
    assert [r.video_uuid for r in results2] == [r.video_uuid for r in results]
    with pytest.raises(Conflict):
        await store.jobs.create(dataclasses.replace(nj, request_hash="different"))
    with pytest.raises(Conflict):
        await store.jobs.create(dataclasses.replace(nj, owner="someone else"))
    got = await store.jobs.get(nj.task_uuid, "k1")
    assert got is not None and got[0].request_hash == "h1"  # nothing changed


async def test_get_is_scoped_to_its_owner(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    assert await store.jobs.get(nj.task_uuid, "someone-else") is None
    assert await store.jobs.get(nj.task_uuid, None) is not None
    assert await store.jobs.get(str(uuid.uuid4()), None) is None


async def test_claim_runs_jobs_in_order_and_once(store: TaskStore):
    first, second = new_job(), new_job()
    await store.jobs.create(first)
    await asyncio.sleep(0.01)
    await store.jobs.create(second)
    c1 = await store.queue.claim("w1", 30)
    c2 = await store.queue.claim("w2", 30)
    assert c1 is not None and c2 is not None
    assert (c1.job.task_uuid, c2.job.task_uuid) == (first.task_uuid, second.task_uuid)
    assert c1.job.status is JobStatus.RUNNING and c1.job.attempts == 1
    assert c1.job.lease_owner == "w1" and c1.job.started_at is not None
    assert [r.video_uuid for r in c1.results] == list(first.video_uuids)
    assert await store.queue.claim("w3", 30) is None


async def test_concurrent_claims_never_share_a_job(store_url: str, store: TaskStore):
    # Four handles on one store (in memory: the same one), draining it together.
    handles: list[TaskStore] = [store] * 4
    if isinstance(store, SqlStore):
        handles = [store, *(SqlStore(store_url) for _ in range(3))]
    try:
        for _ in range(12):
            await store.jobs.create(new_job())

        async def drain(s: TaskStore, wid: str) -> list[str]:
            got = []
            while (c := await s.queue.claim(wid, 30)) is not None:
                got.append(c.job.task_uuid)
            return got

        claimed = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(handles)))
        flat = [t for part in claimed for t in part]
        assert len(flat) == 12 and len(set(flat)) == 12
    finally:
        for s in handles[1:]:
            if s is not store:
                await s.close()


async def test_lease_fences_writes_after_expiry(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    c1 = await store.queue.claim("w1", 10)
    assert c1 is not None
    now[0] += 11  # lease expired: another worker takes the job over
    c2 = await store.queue.claim("w2", 10)
    assert c2 is not None and c2.job.attempts == 2 and c2.job.task_uuid == nj.task_uuid
    with pytest.raises(LeaseLost):
        await store.queue.complete_result(nj.task_uuid, c1.token, update_for(nj.video_uuids[0]))
    with pytest.raises(LeaseLost):
        await store.queue.heartbeat(nj.task_uuid, c1.token, 10)
    with pytest.raises(LeaseLost):
        await store.queue.progress(nj.task_uuid, c1.token, 50)
    await store.queue.complete_result(nj.task_uuid, c2.token, update_for(nj.video_uuids[0]))
    await store.queue.finish(nj.task_uuid, c2.token, JobStatus.SUCCEEDED)
    with pytest.raises(LeaseLost):  # finished: nobody holds a lease any more
        await store.queue.finish(nj.task_uuid, c2.token, JobStatus.FAILED)
    job, results = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.progress == 100
    assert [r.status for r in results] == [ResultStatus.SUCCESS]
    assert results[0].cost == 0.3  # the submit-time price survives completion
    assert results[0].blob_key == f"videos/{nj.video_uuids[0]}.mp4"


async def test_heartbeat_and_progress_report_a_cancel(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    assert await store.queue.heartbeat(nj.task_uuid, c.token, 30) is False
    assert await store.queue.progress(nj.task_uuid, c.token, 140) is False
    got = await store.jobs.get(nj.task_uuid, None)
    assert got is not None and got[0].progress == 100  # clamped
    await store.jobs.cancel(nj.task_uuid, "k1")
    assert await store.queue.heartbeat(nj.task_uuid, c.token, 30) is True


async def test_reaper_fails_a_job_that_used_all_attempts(store: TaskStore):
    nj = new_job(2)
    await store.jobs.create(nj)
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    for _ in range(2):  # max_attempts = 2
        assert await store.queue.claim("w", 5) is not None
        now[0] += 6
    assert await store.queue.claim("w", 5) is None
    assert await store.queue.reap_expired() == 1
    job, results = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.FAILED and job.error_code == "workerLost"
    assert {r.status for r in results} == {ResultStatus.ERROR}
    assert {r.error_code for r in results} == {"workerLost"}


async def test_release_returns_the_job_without_spending_an_attempt(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    await store.queue.release(nj.task_uuid, c.token)
    c2 = await store.queue.claim("w", 30)
    assert c2 is not None and c2.job.attempts == 1


async def test_cancel_queued_and_running(store: TaskStore):
    queued, running = new_job(), new_job()
    await store.jobs.create(queued)
    await store.jobs.create(running)
    c = await store.queue.claim("w", 30)
    assert c is not None and c.job.task_uuid == queued.task_uuid
    # the first job is now running; cancel flags it for the worker
    job = await store.jobs.cancel(queued.task_uuid, "k1")
    assert job.status is JobStatus.RUNNING and job.cancel_requested
    assert await store.queue.progress(queued.task_uuid, c.token, 40) is True
    job2 = await store.jobs.cancel(running.task_uuid, "k1")
    assert job2.status is JobStatus.CANCELED
    got = await store.jobs.get(running.task_uuid, None)
    assert got is not None and [r.error_code for r in got[1]] == ["taskCancelled"]
    assert await store.queue.claim("w", 30) is None
    with pytest.raises(NotFound):
        await store.jobs.cancel(str(uuid.uuid4()), "k1")
    with pytest.raises(NotFound):
        await store.jobs.cancel(running.task_uuid, "someone else")


async def test_deliveries_are_written_with_the_event_they_report(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    video = nj.video_uuids[0]
    await store.queue.complete_result(nj.task_uuid, c.token, update_for(video), [hook(video)])
    claimed = await store.outbox.claim(10, 30)
    assert [(d.kind, d.event, d.video_uuid, d.attempts) for d in claimed] == [
        (DeliveryKind.WEBHOOK, DeliveryEvent.RESULT_READY, video, 1)
    ]
    assert await store.outbox.claim(10, 30) == []  # leased
    await store.outbox.retry(claimed[0].id, "HTTP 500", None)
    [row] = await store.jobs.deliveries(nj.task_uuid)
    assert (row.status, row.last_error, row.attempts) == (DeliveryStatus.FAILED, "HTTP 500", 1)


async def test_a_retried_delivery_comes_back_when_due(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    await store.queue.finish(nj.task_uuid, c.token, JobStatus.FAILED, "x", "y", [hook()])
    [first] = await store.outbox.claim(10, 30)
    assert first.event is DeliveryEvent.TASK_FAILED and first.video_uuid is None
    await store.outbox.retry(first.id, "HTTP 503", next_at=1010.0)
    assert await store.outbox.claim(10, 30) == []  # not due yet
    now[0] = 1011.0
    [again] = await store.outbox.claim(10, 30)
    assert (again.id, again.attempts, again.last_error) == (first.id, 2, "HTTP 503")
    await store.outbox.done(again.id)
    [row] = await store.jobs.deliveries(nj.task_uuid)
    assert row.status is DeliveryStatus.DELIVERED and row.delivered_at == 1011.0
    failed = await store.jobs.get(nj.task_uuid, None)
    assert failed is not None and failed[1][0].error_code == "x"


async def test_api_keys(store: TaskStore):
    kid = await store.keys.add("a" * 64, "first", "oi_abcd")
    assert await store.keys.add("a" * 64, "dup", "oi_abcd") == kid
    assert await store.keys.find("a" * 64) == kid
    assert await store.keys.revoke("oi_abcd") is True
    assert await store.keys.revoke("oi_abcd") is False
    assert await store.keys.find("a" * 64) is None
    assert [k.label for k in await store.keys.all()] == ["first"]


async def place(store: TaskStore, nj: NewJob) -> int | None:
    found = await store.jobs.get_placed(nj.task_uuid, None)
    assert found is not None
    return found[2]


async def test_queued_jobs_know_their_place(store: TaskStore):
    made = [new_job() for _ in range(4)]
    for nj in made:
        await store.jobs.create(nj)
    assert [await place(store, nj) for nj in made] == [0, 1, 2, 3]
    claim = await store.queue.claim("w1", 30)
    assert claim is not None and claim.job.task_uuid == made[0].task_uuid
    assert await place(store, made[0]) is None  # running: no place in the queue
    assert [await place(store, nj) for nj in made[1:]] == [0, 1, 2]
    await store.jobs.cancel(made[2].task_uuid, "k1")  # out of order: a hole in the queue
    assert [await place(store, made[1]), await place(store, made[3])] == [0, 1]
    await store.jobs.delete(made[1].task_uuid, "k1")  # the head, deleted
    assert await place(store, made[3]) == 0
    await store.queue.release(made[0].task_uuid, claim.token)  # handed back: first in line
    assert [await place(store, made[0]), await place(store, made[3])] == [0, 1]
    again = await store.queue.claim("w2", 30)
    assert again is not None and again.job.task_uuid == made[0].task_uuid
    assert await place(store, made[3]) == 0


async def test_a_retried_submit_leaves_no_gap_in_the_queue(store: TaskStore):
    first, second = new_job(), new_job()
    await store.jobs.create(first)
    await store.jobs.create(first)  # a retry: its unused queue number is a hole
    await store.jobs.create(second)
    assert await place(store, second) == 1
    assert await store.queue.reap_expired() == 0  # the chores forget passed holes quietly
    assert await place(store, second) == 1


async def test_places_of_a_queue_that_comes_and_goes(store: TaskStore):
    jobs = [new_job() for _ in range(30)]
    for nj in jobs:
        await store.jobs.create(nj)
    alive = list(jobs)
    for step in range(20):  # claims, cancels and releases in turn
        if step % 3 == 0:
            c = await store.queue.claim("w", 30)
            assert c is not None
            alive.remove(next(j for j in alive if j.task_uuid == c.job.task_uuid))
            if step % 2 == 0:
                await store.queue.release(c.job.task_uuid, c.token)
                alive.insert(0, next(j for j in jobs if j.task_uuid == c.job.task_uuid))
        elif step % 3 == 1:
            victim = alive.pop(len(alive) // 2)
            await store.jobs.cancel(victim.task_uuid, "k1")
        else:
            await store.queue.reap_expired()
        assert [await place(store, nj) for nj in alive] == list(range(len(alive)))


async def test_pages_of_an_owners_jobs(store: TaskStore):
    mine = []
    for _ in range(5):
        nj = new_job()
        await store.jobs.create(nj)
        mine.append(nj.task_uuid)
        await asyncio.sleep(0.002)
    await store.jobs.create(new_job(owner="other"))
    first = await store.jobs.page("k1", None, 2, descending=True)
    assert [j.task_uuid for j, _ in first] == mine[::-1][:2]
    rest = await store.jobs.page("k1", first[-1][0].task_uuid, 10, descending=True)
    assert [j.task_uuid for j, _ in rest] == mine[::-1][2:]
    oldest = await store.jobs.page("k1", None, 2, descending=False)
    assert [j.task_uuid for j, _ in oldest] == mine[:2]
    assert all(len(results) == 1 for _, results in first)
    with pytest.raises(NotFound):
        await store.jobs.page("other", mine[0], 2)


async def test_delete_takes_results_and_deliveries_but_not_a_running_job(store: TaskStore):
    nj = new_job(2)
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    with pytest.raises(Conflict):
        await store.jobs.delete(nj.task_uuid, "k1")
    video = nj.video_uuids[0]
    await store.queue.complete_result(nj.task_uuid, c.token, update_for(video), [hook(video)])
    await store.queue.finish(nj.task_uuid, c.token, JobStatus.FAILED, "x", "y")
    assert await store.jobs.delete(nj.task_uuid, "someone else") is None
    removed = await store.jobs.delete(nj.task_uuid, "k1")
    assert removed is not None and [r.video_uuid for r in removed[1]] == list(nj.video_uuids)
    assert await store.jobs.get(nj.task_uuid, None) is None
    assert await store.jobs.finished_result(video) is None
    assert await store.jobs.deliveries(nj.task_uuid) == []
    assert await store.outbox.claim(10, 30) == []


async def test_finished_results_are_found_by_their_video_uuid(store: TaskStore):
    nj = new_job(2)
    await store.jobs.create(nj)
    assert await store.jobs.finished_result(nj.video_uuids[1]) is None  # still processing
    c = await store.queue.claim("w", 30)
    assert c is not None
    await store.queue.complete_result(nj.task_uuid, c.token, update_for(nj.video_uuids[1]))
    found = await store.jobs.finished_result(nj.video_uuids[1])
    assert found is not None and (found.task_uuid, found.index) == (nj.task_uuid, 1)
    assert found.status is ResultStatus.SUCCESS and found.seed == 101 and found.cost == 0.3


async def test_media(store: TaskStore):
    item = MediaItem(
        media_uuid=str(uuid.uuid4()),
        owner="k1",
        kind=MediaKind.VIDEO,
        blob_key="inputs/a.mp4",
        content_type="video/mp4",
        size_bytes=123,
        width=848,
        height=480,
        duration_s=6.5,
        created_at=1.0,
        expires_at=2.0,
    )
    await store.media.add(item)
    assert await store.media.get(item.media_uuid, "k1") == item
    assert await store.media.get(item.media_uuid, None) == item
    assert await store.media.get(item.media_uuid, "other") is None
    assert await store.media.delete(item.media_uuid, "other") is None
    assert await store.media.delete(item.media_uuid, "k1") == item
    assert await store.media.get(item.media_uuid, None) is None


async def test_workers_register_and_beat(store: TaskStore):
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    info = WorkerInfo("h:1:0", "h", 1, WorkerState.LOADING, "ltx2", "tiny", True, 990.0, 1000.0)
    await store.workers.register(info)
    await store.workers.register(dataclasses.replace(info, weights="tiny-2"))  # replaces
    now[0] = 1010.0
    await store.workers.beat(info.id, WorkerState.READY)
    [seen] = await store.workers.all(fresh_within_s=5)
    assert (seen.state, seen.weights, seen.heartbeat_at) == (WorkerState.READY, "tiny-2", 1010.0)
    now[0] = 1020.0
    assert await store.workers.all(fresh_within_s=5) == []
    assert len(await store.workers.all()) == 1


async def test_memory_store_is_one_process_only():
    # Two handles share nothing: the memory store is for tests and single-process demos.
    a, b = MemoryStore(), MemoryStore()
    await a.jobs.create(new_job())
    assert await b.queue.claim("w", 30) is None


async def test_an_idle_worker_is_woken_by_a_submit(store_url: str, store: TaskStore):
    # The waiting side is another handle on the same store, as a worker process is.
    waiter: TaskStore = SqlStore(store_url) if isinstance(store, SqlStore) else store
    try:
        await waiter.queue.wait(0.05)  # starts listening; nothing arrives: the timeout ends it
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        waiting = asyncio.create_task(waiter.queue.wait(10))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await store.jobs.create(new_job())
        await asyncio.wait_for(waiting, 5)
        woken_after = loop.time() - t0
        assert woken_after < 2, woken_after  # woken, not timed out (10 s)
    finally:
        if waiter is not store:
            await waiter.close()

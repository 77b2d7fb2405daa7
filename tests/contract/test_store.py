"""One TaskStore contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from openimagine.domain.jobs import JobStatus, ResultStatus
from openimagine.errors import Conflict, LeaseLost, NotFound
from openimagine.store.base import NewJob, OutboxItem, ResultUpdate
from openimagine.store.sql import SqlStore


def new_job(n: int = 1, *, owner: str = "k1", request: str = '{"a":1}', h: str = "h1") -> NewJob:
    return NewJob(
        task_uuid=str(uuid.uuid4()),
        owner=owner,
        task_type="videoInference",
        model="xai:grok-imagine@video",
        request=request,
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
        cost=None,
        nsfw=None,
        expires_at=9e9,
    )


async def test_create_is_idempotent_and_conflicts_on_a_different_request(store: SqlStore):
    nj = new_job(2)
    job, results, created = await store.create_job(nj)
    assert created and job.status is JobStatus.QUEUED and len(results) == 2
    assert [r.seed for r in results] == [100, 101]
    again, results2, created2 = await store.create_job(nj)
    assert not created2 and again.task_uuid == job.task_uuid
    assert [r.video_uuid for r in results2] == [r.video_uuid for r in results]
    other = NewJob(
        **{**nj.__dict__}
        if hasattr(nj, "__dict__")
        else {f: getattr(nj, f) for f in nj.__slots__} | {"request_hash": "different"}
    )
    with pytest.raises(Conflict):
        await store.create_job(other)
    # nothing changed by the conflicting call
    got = await store.get_job(nj.task_uuid, "k1")
    assert got is not None and got[0].request_hash == "h1"


async def test_get_job_is_scoped_to_its_owner(store: SqlStore):
    nj = new_job()
    await store.create_job(nj)
    assert await store.get_job(nj.task_uuid, "someone-else") is None
    assert await store.get_job(nj.task_uuid, None) is not None


async def test_claim_runs_jobs_in_order_and_once(store: SqlStore):
    first, second = new_job(), new_job()
    await store.create_job(first)
    await asyncio.sleep(0.01)
    await store.create_job(second)
    assert await store.queue_position(second.task_uuid) == 1
    c1 = await store.claim_next("w1", 30)
    c2 = await store.claim_next("w2", 30)
    assert c1 is not None and c2 is not None
    assert (c1.job.task_uuid, c2.job.task_uuid) == (first.task_uuid, second.task_uuid)
    assert c1.job.status is JobStatus.RUNNING and c1.job.attempts == 1
    assert await store.claim_next("w3", 30) is None


async def test_concurrent_claims_never_share_a_job(store_url: str):
    stores = [SqlStore(store_url) for _ in range(4)]
    await stores[0].migrate()
    try:
        for _ in range(12):
            await stores[0].create_job(new_job())

        async def drain(s: SqlStore, wid: str) -> list[str]:
            got = []
            while (c := await s.claim_next(wid, 30)) is not None:
                got.append(c.job.task_uuid)
            return got

        claimed = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(stores)))
        flat = [t for part in claimed for t in part]
        assert len(flat) == 12 and len(set(flat)) == 12
    finally:
        for s in stores:
            await s.close()


async def test_lease_fences_writes_after_expiry(store: SqlStore):
    nj = new_job()
    await store.create_job(nj)
    now = [1000.0]
    store.clock = lambda: now[0]
    c1 = await store.claim_next("w1", 10)
    assert c1 is not None
    now[0] += 11  # lease expired: another worker takes the job over
    c2 = await store.claim_next("w2", 10)
    assert c2 is not None and c2.job.attempts == 2 and c2.job.task_uuid == nj.task_uuid
    with pytest.raises(LeaseLost):
        await store.complete_result(nj.task_uuid, c1.token, update_for(nj.video_uuids[0]))
    with pytest.raises(LeaseLost):
        await store.heartbeat(nj.task_uuid, c1.token, 10)
    await store.complete_result(nj.task_uuid, c2.token, update_for(nj.video_uuids[0]))
    await store.finish_job(nj.task_uuid, c2.token, JobStatus.SUCCEEDED)
    job, results = await store.get_job(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.progress == 100
    assert [r.status for r in results] == [ResultStatus.SUCCESS]
    assert results[0].cost == 0.3  # the submit-time price survives completion


async def test_reaper_fails_a_job_that_used_all_attempts(store: SqlStore):
    nj = new_job(2)
    await store.create_job(nj)
    now = [1000.0]
    store.clock = lambda: now[0]
    for _ in range(2):  # max_attempts = 2
        assert await store.claim_next("w", 5) is not None
        now[0] += 6
    assert await store.claim_next("w", 5) is None
    assert await store.reap_expired() == 1
    job, results = await store.get_job(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.FAILED and job.error_code == "workerLost"
    assert {r.status for r in results} == {ResultStatus.ERROR}


async def test_release_returns_the_job_without_spending_an_attempt(store: SqlStore):
    nj = new_job()
    await store.create_job(nj)
    c = await store.claim_next("w", 30)
    assert c is not None
    await store.release_job(nj.task_uuid, c.token)
    c2 = await store.claim_next("w", 30)
    assert c2 is not None and c2.job.attempts == 1


async def test_cancel_queued_and_running(store: SqlStore):
    queued, running = new_job(), new_job()
    await store.create_job(queued)
    await store.create_job(running)
    c = await store.claim_next("w", 30)
    assert c is not None and c.job.task_uuid == queued.task_uuid
    # the first job is now running; cancel flags it for the worker
    job = await store.request_cancel(queued.task_uuid, "k1")
    assert job.status is JobStatus.RUNNING and job.cancel_requested
    assert await store.set_progress(queued.task_uuid, c.token, 40) is True
    job2 = await store.request_cancel(running.task_uuid, "k1")
    assert job2.status is JobStatus.CANCELED
    assert await store.claim_next("w", 30) is None
    with pytest.raises(NotFound):
        await store.request_cancel(str(uuid.uuid4()), "k1")


async def test_finish_writes_outbox_rows_in_the_same_transaction(store: SqlStore):
    nj = new_job()
    await store.create_job(nj)
    c = await store.claim_next("w", 30)
    assert c is not None
    item = OutboxItem(
        id=str(uuid.uuid4()),
        task_uuid=nj.task_uuid,
        kind="webhook",
        url="http://127.0.0.1:1/hook",
        payload='{"data":[]}',
    )
    await store.complete_result(nj.task_uuid, c.token, update_for(nj.video_uuids[0]), [item])
    claimed = await store.claim_outbox(10, 30)
    assert [o.id for o in claimed] == [item.id]
    assert await store.claim_outbox(10, 30) == []  # leased
    await store.outbox_retry(item.id, "HTTP 500", None)
    rows = await store.outbox_status(nj.task_uuid)
    assert rows[0]["status"] == "failed" and rows[0]["last_error"] == "HTTP 500"


async def test_api_keys(store: SqlStore):
    kid = await store.add_api_key("a" * 64, "first", "oi_abcd")
    assert await store.add_api_key("a" * 64, "dup", "oi_abcd") == kid
    assert await store.find_api_key("a" * 64) == kid
    assert await store.revoke_api_key("oi_abcd") is True
    assert await store.find_api_key("a" * 64) is None
    assert [k.label for k in await store.list_api_keys()] == ["first"]


async def test_queued_jobs_know_their_place(store: SqlStore):
    made = [new_job() for _ in range(3)]
    for nj in made:
        await store.create_job(nj)
    places = []
    for nj in made:
        found = await store.get_job_and_place(nj.task_uuid, "k1")
        assert found is not None
        places.append(found[2])
        assert await store.queue_position(nj.task_uuid) == found[2]
    assert places == [0, 1, 2]
    assert await store.get_job_and_place(made[0].task_uuid, "someone else") is None
    claim = await store.claim_next("w1", 30)
    assert claim is not None and claim.job.task_uuid == made[0].task_uuid
    running = await store.get_job_and_place(made[0].task_uuid, None)
    assert running is not None and running[2] is None  # running: no place in the queue
    later = await store.get_job_and_place(made[2].task_uuid, None)
    assert later is not None and later[2] == 1

"""Submits, polls and claims at once, on each store: every task is stored once, claimed once
and finished once, retries stay idempotent, and places in the queue stay exact."""

from __future__ import annotations

import asyncio
import random

from openimagine.domain.jobs import JobStatus, NewJob, ResultStatus
from openimagine.domain.quotas import Admission
from openimagine.errors import QuotaExceeded
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore
from tests.contract.test_store import new_job, update_for

TASKS = 300
SUBMITTERS = 24
WORKERS = 4


async def _submit(store: TaskStore, share: list[NewJob]) -> None:
    for nj in share:
        job, _, created = await store.jobs.create(nj)
        assert created and job.task_uuid == nj.task_uuid
        if random.random() < 0.2:  # a client retrying: the same job, not a new one
            again, _, created = await store.jobs.create(nj)
            assert not created and again.seq == job.seq


async def _poll(store: TaskStore, jobs: list[NewJob], done: asyncio.Event) -> None:
    while not done.is_set():
        found = await store.jobs.get_placed(random.choice(jobs).task_uuid, "k1")
        if found is not None:
            place = found[2]
            assert place is None or 0 <= place < TASKS
            assert (place is None) == (found[0].status is not JobStatus.QUEUED)
        await asyncio.sleep(0)


async def _work(handle: TaskStore, name: str, claimed: list[str]) -> None:
    idle = 0
    while idle < 50:
        claim = await handle.queue.claim(name, 30)
        if claim is None:
            idle += 1
            await asyncio.sleep(0.005)
            continue
        idle = 0
        claimed.append(claim.job.task_uuid)
        for result in claim.results:
            update = update_for(result.video_uuid)
            await handle.queue.complete_result(claim.job.task_uuid, claim.token, update)
        await handle.queue.finish(claim.job.task_uuid, claim.token, JobStatus.SUCCEEDED)


async def test_submit_poll_and_claim_hammered_together(store_url: str, store: TaskStore):
    # Workers use handles of their own, as worker processes do (in memory: the same store).
    workers: list[TaskStore] = [store] * WORKERS
    if isinstance(store, SqlStore):
        workers = [SqlStore(store_url, pool_size=2) for _ in range(WORKERS)]
    jobs = [new_job(random.choice((1, 2))) for _ in range(TASKS)]
    claimed: list[str] = []
    done = asyncio.Event()
    try:
        pollers = [asyncio.create_task(_poll(store, jobs, done)) for _ in range(8)]
        await asyncio.gather(
            *(_submit(store, jobs[i::SUBMITTERS]) for i in range(SUBMITTERS)),
            *(_work(h, f"w{i}", claimed) for i, h in enumerate(workers)),
        )
        done.set()
        await asyncio.gather(*pollers)
    finally:
        for handle in workers:
            if handle is not store:
                await handle.close()

    assert sorted(claimed) == sorted(nj.task_uuid for nj in jobs)  # each exactly once
    for nj in jobs:
        found = await store.jobs.get(nj.task_uuid, None)
        assert found is not None
        job, results = found
        assert job.status is JobStatus.SUCCEEDED and job.attempts == 1
        assert [r.status for r in results] == [ResultStatus.SUCCESS] * len(nj.video_uuids)
    assert await store.queue.claim("late", 30) is None


async def test_places_are_exact_once_concurrent_submits_have_landed(
    store_url: str, store: TaskStore
):
    handles: list[TaskStore] = [store] * 3
    if isinstance(store, SqlStore):
        handles = [store, SqlStore(store_url), SqlStore(store_url)]
    try:
        batches = [[new_job() for _ in range(40)] for _ in handles]
        await asyncio.gather(
            *(
                asyncio.gather(*(h.jobs.create(nj) for nj in batch))
                for h, batch in zip(handles, batches, strict=True)
            )
        )
        for _ in range(25):  # a worker takes some, whatever order they landed in
            assert await store.queue.claim("w", 30) is not None
        queued = []
        for batch in batches:
            for nj in batch:
                found = await store.jobs.get(nj.task_uuid, None)
                assert found is not None
                if found[0].status is JobStatus.QUEUED:
                    queued.append(found[0])
        queued.sort(key=lambda job: (job.turn, job.seq))  # the claim order
        places = [await store.jobs.get_placed(job.task_uuid, None) for job in queued]
        assert [p and p[2] for p in places] == list(range(len(queued)))
    finally:
        for handle in handles:
            if handle is not store:
                await handle.close()


async def test_concurrent_batches_of_one_key_never_pass_its_queue_limit(
    store_url: str, store: TaskStore
):
    handles: list[TaskStore] = [store] * 3
    if isinstance(store, SqlStore):
        handles = [store, SqlStore(store_url), SqlStore(store_url)]
    limit = Admission(max_queued=25)
    try:
        outcomes = await asyncio.gather(
            *(h.jobs.create(new_job(), limit) for h in handles for _ in range(20)),
            return_exceptions=True,
        )
    finally:
        for handle in handles:
            if handle is not store:
                await handle.close()
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(made) == 25
    assert all(isinstance(o, QuotaExceeded) for o in outcomes if isinstance(o, BaseException))
    places = sorted([(await store.jobs.get_placed(o[0].task_uuid, None) or (0, 0, -1))[2]
                     for o in made])  # fmt: skip
    assert places == list(range(25))


async def test_replicas_starting_together_configure_the_same_keys_once(
    store_url: str, store: TaskStore
):
    """Every replica of a fleet is started with the same `--api-key` set, often at once."""
    keys = {f"hash-{i}": f"oi_{i}" for i in range(4)}
    if isinstance(store, SqlStore):
        handles: list[TaskStore] = [store, *(SqlStore(store_url) for _ in range(5))]
    else:
        handles = [store] * 6
    try:
        for _ in range(5):  # a race that is lost only now and then
            await asyncio.gather(*(h.keys.configure(keys) for h in handles))
    finally:
        for h in handles[1:]:
            if h is not store:
                await h.close()
    active = [k for k in await store.keys.all() if k.revoked_at is None]
    assert sorted(k.prefix for k in active) == sorted(keys.values())
    for key_hash in keys:
        assert await store.keys.find(key_hash) is not None

"""Fair share on each store: keys with queued work take turns, each oldest first, and every
queued job's place is the number of jobs claimed before it."""

from __future__ import annotations

import asyncio
import random

from openimagine.domain.jobs import Job, JobStatus, NewJob
from openimagine.domain.quotas import Limits
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore
from tests.contract.test_store import new_job


async def _queue(store: TaskStore, owner: str, n: int) -> list[NewJob]:
    """`n` jobs of `owner`, submitted in order (each awaited: their enqueue order is known)."""
    jobs = [new_job(owner=owner) for _ in range(n)]
    for nj in jobs:
        await store.jobs.create(nj)
    return jobs


async def _queue_at_once(store: TaskStore, owner: str, n: int) -> None:
    """`n` jobs of `owner` submitted concurrently (one batch or a few, on a SQL store)."""
    await asyncio.gather(*(store.jobs.create(new_job(owner=owner)) for _ in range(n)))


async def _claims(store: TaskStore, n: int) -> list[Job]:
    claimed = []
    for _ in range(n):
        claim = await store.queue.claim("w", 60)
        assert claim is not None
        claimed.append(claim.job)
    return claimed


async def _place(store: TaskStore, task_uuid: str) -> int | None:
    found = await store.jobs.get_placed(task_uuid, None)
    assert found is not None
    return found[2]


async def test_a_key_with_a_deep_queue_delays_a_new_key_by_one_task(store: TaskStore) -> None:
    for _ in range(10):
        await _queue_at_once(store, "heavy", 100)
    light = new_job(owner="light")
    await store.jobs.create(light)

    assert await _place(store, light.task_uuid) == 1  # behind the one heavy job of this round
    first, second = await _claims(store, 2)
    assert (first.owner, second.task_uuid) == ("heavy", light.task_uuid)


async def test_keys_take_turns_each_oldest_first(store: TaskStore) -> None:
    a = await _queue(store, "a", 4)
    b = await _queue(store, "b", 3)
    c = await _queue(store, "c", 1)

    order = [job.task_uuid for job in await _claims(store, 8)]

    expected = [a[0], b[0], c[0], a[1], b[1], a[2], b[2], a[3]]
    assert order == [nj.task_uuid for nj in expected]
    assert await store.queue.claim("w", 60) is None


async def test_a_key_that_comes_back_joins_the_current_round(store: TaskStore) -> None:
    a = await _queue(store, "a", 6)
    b1 = new_job(owner="b")
    await store.jobs.create(b1)
    assert [j.task_uuid for j in await _claims(store, 4)] == [
        a[0].task_uuid, b1.task_uuid, a[1].task_uuid, a[2].task_uuid,
    ]  # fmt: skip
    b2 = new_job(owner="b")  # b had nothing queued: it joins now, not after a's backlog
    await store.jobs.create(b2)

    assert await _place(store, b2.task_uuid) == 1
    assert [j.task_uuid for j in await _claims(store, 2)] == [a[3].task_uuid, b2.task_uuid]


async def test_places_match_the_claim_order_after_cancels_deletes_and_a_release(
    store: TaskStore,
) -> None:
    rng = random.Random(7)
    submitted: list[NewJob] = []
    for _ in range(60):
        submitted += await _queue(store, rng.choice(["a", "b", "b", "c"]), rng.randint(1, 3))
        if rng.random() < 0.3:
            await _claims(store, 1)
    for nj in rng.sample(submitted, 25):  # cancels and deletes, from anywhere in the queues
        found = await store.jobs.get(nj.task_uuid, None)
        assert found is not None
        if found[0].status is not JobStatus.QUEUED:
            continue
        if rng.random() < 0.5:
            await store.jobs.cancel(nj.task_uuid, None)
        else:
            assert await store.jobs.delete(nj.task_uuid, nj.owner) is not None
    claim = await store.queue.claim("w", 60)
    assert claim is not None
    await store.queue.release(claim.job.task_uuid, claim.token)  # back, first of its key's
    queued = []
    for nj in submitted:
        found = await store.jobs.get_placed(nj.task_uuid, None)
        if found is not None and found[0].status is JobStatus.QUEUED:
            queued.append((found[2], nj.task_uuid))

    claimed = await _claims(store, len(queued))

    assert await store.queue.claim("w", 60) is None
    assert sorted(queued) == [(i, job.task_uuid) for i, job in enumerate(claimed)]
    same_key = [job.task_uuid for job in claimed if job.owner == claim.job.owner]
    assert same_key[0] == claim.job.task_uuid  # it had its turn: first of its key's again


async def test_every_round_serves_each_key_once_under_concurrent_submits(
    store: TaskStore,
) -> None:
    await asyncio.gather(*(_queue_at_once(store, owner, 30) for owner in ("a", "b", "c")))

    claimed = await _claims(store, 90)

    for start in range(0, 90, 3):
        assert sorted(job.owner for job in claimed[start : start + 3]) == ["a", "b", "c"]


async def test_a_retried_submit_in_a_batch_leaves_no_gap_in_its_keys_turns(
    store: TaskStore,
) -> None:
    first = await _queue(store, "a", 2)
    fresh = [new_job(owner="a") for _ in range(3)]
    other = new_job(owner="b")
    await asyncio.gather(*(store.jobs.create(nj) for nj in [first[1], *fresh, other, first[0]]))
    tasks = [nj.task_uuid for nj in [*first, *fresh, other]]
    places = {task: await _place(store, task) for task in tasks}

    claimed = [job.task_uuid for job in await _claims(store, len(tasks))]

    assert [places[task] for task in claimed] == list(range(len(tasks)))
    assert claimed[:2] == [first[0].task_uuid, other.task_uuid]


async def test_jobs_released_in_any_order_keep_places_exact(store: TaskStore) -> None:
    a = await _queue(store, "a", 4)
    await _queue(store, "b", 2)
    first, second = await store.queue.claim("w", 60), await store.queue.claim("w", 60)
    third = await store.queue.claim("w", 60)
    assert first and second and third and first.job.owner == third.job.owner == "a"
    await store.queue.release(first.job.task_uuid, first.token)  # a's two, back in turn order
    await store.queue.release(third.job.task_uuid, third.token)
    queued = []
    for nj in a:
        found = await store.jobs.get_placed(nj.task_uuid, None)
        assert found is not None
        if found[2] is not None:
            queued.append((found[2], nj.task_uuid))
    b_left = 1

    claimed = await _claims(store, len(queued) + b_left)

    a_order = [job.task_uuid for job in claimed if job.owner == "a"]
    assert a_order[:2] == [third.job.task_uuid, first.job.task_uuid]  # the last back goes first
    assert sorted(queued) == [(i, j.task_uuid) for i, j in enumerate(claimed) if j.owner == "a"]


async def test_a_key_that_had_its_turn_waits_at_most_one_round_behind_a_stuck_head(
    store: TaskStore,
) -> None:
    """A key at its running limit keeps its queued jobs (and the head of the queue) where
    they are while others move on: a key coming back still joins near the head."""
    capped = await store.keys.add("c" * 64, "capped", "oi_capped")
    assert await store.keys.set_limits("oi_capped", Limits(max_running=1))
    await _queue(store, capped, 3)
    a = await _queue(store, "a", 5)
    for _ in range(6):  # the capped key's first, then all of a's
        assert await store.queue.claim("w", 60) is not None
    late = await _queue(store, "d", 5)
    comeback = new_job(owner="a")
    await store.jobs.create(comeback)

    claimed = [job.task_uuid for job in await _claims(store, 3)]

    assert a and late and comeback.task_uuid in claimed  # not behind all five of d's


async def test_concurrent_cancels_and_submits_of_one_key_keep_places_exact(
    store_url: str, store: TaskStore
) -> None:
    handles: list[TaskStore] = [store] * 3
    if isinstance(store, SqlStore):  # three processes' worth of connections
        handles = [store, SqlStore(store_url), SqlStore(store_url)]
    try:
        jobs = await _queue(store, "a", 40)
        await _queue(store, "b", 10)
        doomed = jobs[1::2]
        await asyncio.gather(
            *(handles[i % 2].jobs.cancel(nj.task_uuid, "a") for i, nj in enumerate(doomed)),
            *(handles[2].jobs.create(new_job(owner="a")) for _ in range(10)),
        )
        queued = await _places_of_queue(store, ["a", "b"])

        claimed = await _claims(store, len(queued))

        assert sorted(queued) == [(i, job.task_uuid) for i, job in enumerate(claimed)]
        assert await store.queue.claim("w", 60) is None
    finally:
        for handle in handles:
            if handle is not store:
                await handle.close()


async def _places_of_queue(store: TaskStore, owners: list[str]) -> list[tuple[int, str]]:
    """(place, task) of every queued job of these keys."""
    placed = []
    for owner in owners:
        for job, _ in await store.jobs.page(owner, None, 1000):
            found = await store.jobs.get_placed(job.task_uuid, None)
            if found is not None and found[2] is not None:
                placed.append((found[2], job.task_uuid))
    return placed

"""Workers claim by capability on each store: only jobs on their models, no bigger than their
device takes; the others are passed over (queued or with an expired lease), left for the
workers that fit them, and fair share holds among the jobs a worker fits."""

from __future__ import annotations

import dataclasses

from openimagine.domain.jobs import ANY, Capability, NewJob
from openimagine.domain.records import WorkerInfo, WorkerState
from openimagine.store.protocols import TaskStore
from tests.contract.test_store import new_job

OTHER_MODEL = "acme:other@video"
SMALL = {"width": 848, "height": 480, "num_frames": 48}  # 480p × 2 s: 19,537,920
BIG = {"width": 1280, "height": 720, "num_frames": 360}  # 720p × 15 s: 331,776,000
SMALL_GPU = Capability(max_pixel_frames=848 * 480 * 48)
BIG_GPU = Capability(max_pixel_frames=1280 * 720 * 360)


async def _queue(store: TaskStore, *jobs: NewJob) -> None:
    for nj in jobs:  # each awaited: their enqueue order is known
        await store.jobs.create(nj)


async def _claimed(store: TaskStore, capability: Capability, worker: str = "w") -> str | None:
    claim = await store.queue.claim(worker, 30, capability=capability)
    return None if claim is None else claim.job.task_uuid


def test_a_capability_fits_jobs_on_its_models_up_to_its_size():
    big_other = new_job(model=OTHER_MODEL, **BIG).queued(0.0, 1, 0)
    assert ANY.fits(big_other)
    assert Capability(models=(OTHER_MODEL,)).fits(big_other)
    assert not Capability(models=("xai:grok-imagine@video",)).fits(big_other)
    assert BIG_GPU.fits(big_other) and not SMALL_GPU.fits(big_other)
    assert not Capability((OTHER_MODEL,), 848 * 480 * 48).fits(big_other)


async def test_a_worker_claims_only_jobs_on_its_models(store: TaskStore):
    other, grok = new_job(model=OTHER_MODEL), new_job()
    await _queue(store, other, grok)

    assert await _claimed(store, Capability(models=("nobody:none@1",))) is None
    assert await _claimed(store, Capability(models=(grok.spec.model,))) == grok.task_uuid
    assert await _claimed(store, Capability(models=(grok.spec.model,))) is None  # other's left
    both = Capability(models=(grok.spec.model, OTHER_MODEL))
    assert await _claimed(store, both) == other.task_uuid


async def test_a_small_worker_passes_over_a_big_job_that_a_big_worker_takes(store: TaskStore):
    big, small = new_job(**BIG), new_job(**SMALL)
    await _queue(store, big, small)  # the big one first in the queue

    assert await _claimed(store, SMALL_GPU, "small") == small.task_uuid
    assert await _claimed(store, SMALL_GPU, "small") is None
    assert await _claimed(store, BIG_GPU, "big") == big.task_uuid
    placed = await store.jobs.get_placed(big.task_uuid, None)
    assert placed is not None and placed[0].lease_owner == "big"


async def test_an_expired_lease_of_a_big_job_is_left_to_a_big_worker(store: TaskStore):
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    big = new_job(**BIG)
    await _queue(store, big)
    first = await store.queue.claim("big-1", 10, capability=BIG_GPU)
    assert first is not None and first.job.task_uuid == big.task_uuid
    small = new_job(**SMALL)
    await _queue(store, small)
    now[0] += 11  # its lease ran out: the job runs again, but not on a small worker

    assert await _claimed(store, SMALL_GPU, "small") == small.task_uuid
    assert await _claimed(store, SMALL_GPU, "small") is None
    again = await store.queue.claim("big-2", 10, capability=BIG_GPU)
    assert again is not None and again.job.task_uuid == big.task_uuid
    assert again.job.attempts == 2 and again.job.lease_owner == "big-2"


async def test_keys_take_turns_among_the_jobs_a_worker_fits(store: TaskStore):
    a0, a1, a2 = (new_job(owner="a", **size) for size in (SMALL, BIG, SMALL))
    b0, b1 = (new_job(owner="b", **size) for size in (BIG, SMALL))
    await _queue(store, a0, a1, a2, b0, b1)  # turns: a0 b0 | a1 b1 | a2

    small = [await _claimed(store, SMALL_GPU, "small") for _ in range(4)]
    assert small == [a0.task_uuid, b1.task_uuid, a2.task_uuid, None]
    big = [await _claimed(store, BIG_GPU, "big") for _ in range(3)]
    assert big == [b0.task_uuid, a1.task_uuid, None]


async def test_a_capability_keeps_the_running_limit_of_a_key(store: TaskStore):
    a0, a1 = (new_job(owner="a", **SMALL) for _ in range(2))
    b0 = new_job(owner="b", **SMALL)
    await _queue(store, a0, a1, b0)

    got = [await store.queue.claim("w", 30, max_running=1, capability=SMALL_GPU) for _ in range(3)]
    assert [c.job.task_uuid if c else None for c in got] == [a0.task_uuid, b0.task_uuid, None]


async def test_workers_show_their_capability(store: TaskStore):
    info = WorkerInfo("h:1:0", "h", 1, WorkerState.READY, "ltx2", "tiny", True, 990.0, 1000.0)
    wide = dataclasses.replace(
        info, id="h:2:0", started_at=995.0, capability=Capability((OTHER_MODEL, "x:y@1"), 7)
    )
    for worker in (info, wide):
        await store.workers.register(worker)
    assert [w.capability for w in await store.workers.all()] == [ANY, wide.capability]

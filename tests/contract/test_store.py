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
from openimagine.domain.quotas import DAY_S as DAY
from openimagine.domain.quotas import Admission, Limits
from openimagine.domain.records import MediaItem, MediaKind, WorkerInfo, WorkerState
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.domain.usage import UsageTotals
from openimagine.errors import Conflict, LeaseLost, NotFound, QuotaExceeded
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


async def test_a_job_ended_without_its_worker_still_sends_its_failure_webhook(store: TaskStore):
    url = "http://127.0.0.1:1/hook"
    lost, queued = new_job(webhook_url=url), new_job(webhook_url=url)
    await store.jobs.create(lost)
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    for _ in range(2):  # max_attempts = 2: its worker dies twice
        assert await store.queue.claim("w", 5) is not None
        now[0] += 6
    await store.jobs.create(queued)
    await store.jobs.cancel(queued.task_uuid, "k1")  # canceled before any worker saw it
    assert await store.queue.reap_expired() == 1
    for nj in (lost, queued):
        [hook] = await store.jobs.deliveries(nj.task_uuid)
        assert (hook.kind, hook.event, hook.url) == (
            DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, url,
        )  # fmt: skip
    quiet = new_job(webhook_url=None)  # no webhookURL: nothing to send
    await store.jobs.create(quiet)
    await store.jobs.cancel(quiet.task_uuid, "k1")
    assert await store.jobs.deliveries(quiet.task_uuid) == []


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


async def test_claims_bound_each_destination_and_skip_busy_ones(store: TaskStore):
    """A receiver's backlog never fills a claim: at most `per_host` rows of one destination
    (oldest first), none of a destination the sender reports busy."""
    urls = ["http://slow.example:8080/a"] * 5 + ["http://fast.example/b", "https://x.example/c"]
    for url in urls:
        nj = new_job(n=1)
        await store.jobs.create(nj)
        c = await store.queue.claim("w", 30)
        assert c is not None
        webhook = NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, url)
        await store.queue.finish(nj.task_uuid, c.token, JobStatus.FAILED, "x", "y", [webhook])
    first = await store.outbox.claim(10, 30, per_host=2)
    assert sorted(d.url for d in first) == sorted(urls[:2] + urls[5:])
    assert await store.outbox.claim(10, 30, per_host=2, busy=["slow.example:8080"]) == []
    more = await store.outbox.claim(10, 30, per_host=2)
    assert [d.url for d in more] == urls[:2]  # the next two of the backlog, not all three
    await store.outbox.retry(first[0].id, "HTTP 503", next_at=0.0)
    unbounded = await store.outbox.claim(10, 30)
    assert len(unbounded) == 2  # the last slow one and the retried one


async def test_api_keys(store: TaskStore):
    kid = await store.keys.add("a" * 64, "first", "oi_abcd")
    assert await store.keys.add("a" * 64, "dup", "oi_abcd") == kid
    assert await store.keys.find("a" * 64) == kid
    assert await store.keys.revoke("oi_abcd") is True
    assert await store.keys.revoke("oi_abcd") is False
    assert await store.keys.find("a" * 64) is None
    assert [k.label for k in await store.keys.all()] == ["first"]


async def test_configured_keys_live_only_while_configured(store: TaskStore):
    a, b, made = "a" * 64, "b" * 64, "c" * 64
    await store.keys.add(made, "made with keys create", "oi_made")
    await store.keys.configure({a: "oi_a", b: "oi_b", made: "oi_made"})
    first = await store.keys.find(a)
    assert first is not None and await store.keys.find(b) is not None
    await store.keys.configure({b: "oi_b"})  # the flag no longer names `a`, nor `made`
    assert await store.keys.find(a) is None and await store.keys.find(b) is not None
    assert await store.keys.find(made) is not None  # a `keys create` key is not the flag's
    await store.keys.configure({a: "#0a1b2c3d"})  # named again: the same key, active again
    assert await store.keys.find(a) == first and await store.keys.find(b) is None
    by_prefix = {k.prefix: k.configured for k in await store.keys.all()}
    assert by_prefix == {"#0a1b2c3d": True, "oi_b": True, "oi_made": False}  # prefix renewed


async def test_a_submit_past_a_quota_stores_nothing(store: TaskStore):
    now = [DAY * 20000 + 100.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    queue = Admission(max_queued=2)
    first, second, third = new_job(), new_job(), new_job()
    await store.jobs.create(first, queue)
    await store.jobs.create(second, queue)
    with pytest.raises(QuotaExceeded) as refused:
        await store.jobs.create(third, queue)
    assert (refused.value.code, refused.value.retry_after_s) == ("tooManyQueuedTasks", 5)
    assert await store.jobs.get(third.task_uuid, None) is None
    assert (await store.jobs.create(second, queue))[2] is False  # a retry: its acknowledgement
    await store.jobs.create(new_job(owner="k2"), queue)  # another key's queue is its own
    claim = await store.queue.claim("w", 30)  # one leaves the queue
    assert claim is not None and claim.job.owner == "k1"
    await store.jobs.create(third, queue)
    await store.queue.release(claim.job.task_uuid, claim.token)  # and comes back: full again
    with pytest.raises(QuotaExceeded):
        await store.jobs.create(new_job(), queue)
    await store.jobs.cancel(third.task_uuid, "k1")  # three queued: cancel two, for room
    await store.jobs.cancel(second.task_uuid, "k1")
    fourth = new_job()
    await store.jobs.create(fourth, queue)
    assert await store.jobs.delete(fourth.task_uuid, "k1") is not None  # so does a deleted one
    await store.jobs.create(new_job(), queue)
    with pytest.raises(QuotaExceeded):
        await store.jobs.create(new_job(), queue)

    budget = Admission(daily_budget_usd=0.5)  # each job here costs 0.3
    await store.jobs.create(new_job(owner="k3"), budget)
    with pytest.raises(QuotaExceeded) as broke:
        await store.jobs.create(new_job(owner="k3"), budget)
    assert broke.value.code == "dailyBudgetExceeded"
    assert broke.value.retry_after_s == DAY - 100 + 1  # at midnight UTC
    now[0] += DAY  # a new day, a new budget
    await store.jobs.create(new_job(owner="k3"), budget)


async def test_a_batch_past_the_queue_limit_queues_what_fits_and_keeps_retries(store: TaskStore):
    queue = Admission(max_queued=3)
    stored = new_job()
    await store.jobs.create(stored, queue)
    batch = [new_job() for _ in range(4)]
    outcomes = await asyncio.gather(
        *(store.jobs.create(nj, queue) for nj in [*batch, stored]), return_exceptions=True
    )

    made = [o for o in outcomes[:4] if not isinstance(o, BaseException)]
    refused = [o for o in outcomes[:4] if isinstance(o, QuotaExceeded)]
    assert (len(made), len(refused)) == (2, 2)  # 1 + 2 = the limit
    assert not isinstance(outcomes[4], BaseException) and outcomes[4][2] is False  # a retry
    for nj, outcome in zip(batch, outcomes[:4], strict=True):
        found = await store.jobs.get(nj.task_uuid, None)
        assert (found is None) == isinstance(outcome, QuotaExceeded)  # refused: nothing stored
    places = sorted([(await store.jobs.get_placed(t, None) or (0, 0, None))[2] for t in
                     [stored.task_uuid, *(o[0].task_uuid for o in made)]])  # fmt: skip
    assert places == [0, 1, 2]


async def test_claims_keep_each_key_under_its_running_limit(store: TaskStore):
    capped = await store.keys.add("c" * 64, "capped", "oi_capped")
    free = await store.keys.add("d" * 64, "free", "oi_free")
    assert await store.keys.set_limits("oi_free", Limits(max_running=0))  # no limit for it
    jobs = [new_job(owner=capped), new_job(owner=capped), new_job(owner=free), new_job(owner=free)]
    for nj in jobs:
        await store.jobs.create(nj)
    got = [await store.queue.claim("w", 30, max_running=1) for _ in range(4)]
    owners = [c.job.owner if c else None for c in got]
    assert owners == [capped, free, free, None]  # the capped key's second waits its turn
    assert got[0] is not None
    await store.queue.finish(jobs[0].task_uuid, got[0].token, JobStatus.SUCCEEDED)
    after = await store.queue.claim("w", 30, max_running=1)
    assert after is not None and after.job.task_uuid == jobs[1].task_uuid
    assert await store.keys.limits(free) == Limits(max_running=0)
    assert await store.keys.set_limits("oi_nobody", Limits(max_queued=1)) is False


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
    await store.jobs.cancel(made[2].task_uuid, "k1")  # out of order: a gap in its key's turns
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
    await store.jobs.create(first)  # a retry: it takes no turn
    await store.jobs.create(second)
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


async def test_every_finished_result_enters_the_ledger_once(store: TaskStore):
    now = [5000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    two = new_job(2)  # one result succeeds, the other fails with the job
    await store.jobs.create(two)
    c = await store.queue.claim("w", 30)
    assert c is not None
    await store.queue.complete_result(two.task_uuid, c.token, update_for(two.video_uuids[0]))
    await store.queue.finish(two.task_uuid, c.token, JobStatus.FAILED, "x", "y")
    queued = new_job(1, owner="k2")  # canceled before it ran
    await store.jobs.create(queued)
    await store.jobs.cancel(queued.task_uuid, "k2")
    await store.jobs.create(new_job(1))  # still queued: not in the ledger
    now[0] = 9000.0
    assert await store.jobs.delete(two.task_uuid, "k1") is not None  # the ledger keeps it
    seconds = float(SPEC.seconds)
    assert await store.usage.totals(0, 1e10) == [
        UsageTotals("k1", tasks=1, results=2, failed=1, seconds=seconds, cost=0.3),
        UsageTotals("k2", tasks=1, results=1, failed=1, seconds=0.0, cost=0.0),
    ]
    assert await store.usage.totals(0, 1e10, owner="k2") == [
        UsageTotals("k2", tasks=1, results=1, failed=1, seconds=0.0, cost=0.0)
    ]
    assert await store.usage.totals(5001, 1e10) == []  # by when results finished


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


async def test_each_worker_shows_the_task_whose_lease_it_holds(store: TaskStore):
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    busy, idle = (
        WorkerInfo(
            f"h:{pid}:0", "h", pid, WorkerState.READY, "ltx2", "tiny", True, 990.0 + pid, 1000.0
        )
        for pid in (1, 2)
    )
    for info in (busy, idle):
        await store.workers.register(info)
    # Written by no one: `register` ignores a task the row claims to have.
    await store.workers.register(dataclasses.replace(idle, task_uuid="not-stored"))
    first, second = new_job(), new_job()
    await store.jobs.create(first)
    await store.jobs.create(second)
    c1 = await store.queue.claim(busy.id, 10)
    assert c1 is not None
    seen = await store.workers.all(fresh_within_s=30)
    assert [(w.id, w.task_uuid) for w in seen] == [(busy.id, first.task_uuid), (idle.id, None)]

    # Its lease ran out (its store was away) and it claimed the next job: the job it still
    # holds a live lease on is the one shown.
    now[0] += 11
    c2 = await store.queue.claim(busy.id, 30)
    assert c2 is not None and c2.job.task_uuid in (first.task_uuid, second.task_uuid)
    [shown, _] = await store.workers.all(fresh_within_s=30)
    assert shown.task_uuid == c2.job.task_uuid

    await store.queue.finish(c2.job.task_uuid, c2.token, JobStatus.SUCCEEDED)
    finished = {w.id: w.task_uuid for w in await store.workers.all()}
    if c2.job.task_uuid == first.task_uuid:
        assert finished == {busy.id: None, idle.id: None}
    else:  # the expired first job still names it until it is reaped or claimed again
        assert finished == {busy.id: first.task_uuid, idle.id: None}


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


async def test_the_last_result_ends_the_job_with_it_once(store: TaskStore):
    nj = new_job(2)
    await store.jobs.create(nj)
    c = await store.queue.claim("w", 30)
    assert c is not None
    first, second = nj.video_uuids
    await store.queue.complete_result(nj.task_uuid, c.token, update_for(first), [hook(first)])
    job, _ = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.RUNNING
    last = update_for(second)
    await store.queue.complete_result(nj.task_uuid, c.token, last, [hook(second)], last=True)
    job, results = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and (job.status, job.progress) == (JobStatus.SUCCEEDED, 100)
    assert job.lease_token is None and job.finished_at is not None
    assert [r.status for r in results] == [ResultStatus.SUCCESS] * 2
    # Tried again after its first try committed unseen: its own file is recorded, so done.
    await store.queue.complete_result(nj.task_uuid, c.token, last, last=True)
    with pytest.raises(LeaseLost):  # another file for the same result: not this lease's
        await store.queue.complete_result(
            nj.task_uuid, c.token, dataclasses.replace(last, blob_key="videos/x/y.mp4")
        )
    with pytest.raises(LeaseLost):
        await store.queue.finish(nj.task_uuid, c.token, JobStatus.SUCCEEDED)
    [totals] = await store.usage.totals(0, 1e10)
    assert (totals.results, totals.failed, totals.cost) == (2, 0, 0.6)
    assert len(await store.outbox.claim(10, 30)) == 2  # one webhook a result


async def test_a_stale_workers_last_result_changes_nothing(store: TaskStore):
    nj = new_job()
    await store.jobs.create(nj)
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    stale = await store.queue.claim("w1", 10)
    assert stale is not None
    now[0] += 11
    fresh = await store.queue.claim("w2", 10)
    assert fresh is not None
    video = nj.video_uuids[0]
    with pytest.raises(LeaseLost):
        await store.queue.complete_result(nj.task_uuid, stale.token, update_for(video), last=True)
    job, results = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.RUNNING and job.lease_token == fresh.token
    assert [r.status for r in results] == [ResultStatus.PROCESSING]
    await store.queue.complete_result(nj.task_uuid, fresh.token, update_for(video), last=True)
    job, _ = await store.jobs.get(nj.task_uuid, None) or (None, [])
    assert job is not None and job.status is JobStatus.SUCCEEDED

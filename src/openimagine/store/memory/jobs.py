"""The job and queue parts of the `MemoryStore`."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace

import anyio

from openimagine.domain.deliveries import Delivery, NewDelivery, failure_webhook
from openimagine.domain.jobs import (
    ANY,
    CANCELED,
    Capability,
    Claim,
    Job,
    JobStatus,
    NewJob,
    Result,
    ResultStatus,
    ResultUpdate,
    reaped,
)
from openimagine.domain.quotas import Admission, utc_day
from openimagine.errors import Conflict, LeaseLost, NotFound
from openimagine.store.memory.state import State
from openimagine.store.quotas import over_budget, queue_full

_NO_QUOTA = Admission()


class MemoryJobs:
    """`JobStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    async def create(
        self, new: NewJob, quota: Admission = _NO_QUOTA
    ) -> tuple[Job, list[Result], bool]:
        existing = self._s.jobs.get(new.task_uuid)
        if existing is not None:
            if existing.request_hash != new.request_hash or existing.owner != new.owner:
                raise Conflict(
                    f"taskUUID {new.task_uuid} was already used for a different request.",
                    parameter="taskUUID",
                )
            return existing, self._s.results_of(new.task_uuid), False
        now = self._s.clock()
        self._admit(new, quota, now)
        job = new.queued(now, self._s.arrivals + 1, self._s.allot(new.owner))
        self._s.jobs[job.task_uuid] = job
        self._s.results[job.task_uuid] = new.pending_results()
        self._s.arrivals += 1
        return job, self._s.results_of(job.task_uuid), True

    def _admit(self, new: NewJob, quota: Admission, now: float) -> None:
        """`QuotaExceeded` when `new` takes its owner past `quota` (see `JobStore.create`)."""
        if quota.max_queued:
            queued = sum(
                1
                for j in self._s.jobs.values()
                if j.owner == new.owner and j.status is JobStatus.QUEUED
            )
            if queued >= quota.max_queued:
                raise queue_full(quota.max_queued)
        if quota.daily_budget_usd:
            day, cost = utc_day(now), float(sum(new.costs))
            spent = self._s.spend.get((new.owner, day), 0.0)
            if spent + cost > quota.daily_budget_usd + 1e-9:
                raise over_budget(quota.daily_budget_usd, spent, cost, now)
            self._s.spend[(new.owner, day)] = spent + cost

    def _owned(self, task_uuid: str, owner: str | None) -> Job | None:
        job = self._s.jobs.get(task_uuid)
        return None if job is None or (owner is not None and job.owner != owner) else job

    async def get(self, task_uuid: str, owner: str | None) -> tuple[Job, list[Result]] | None:
        job = self._owned(task_uuid, owner)
        return None if job is None else (job, self._s.results_of(task_uuid))

    async def get_placed(
        self, task_uuid: str, owner: str | None
    ) -> tuple[Job, list[Result], int | None] | None:
        job = self._owned(task_uuid, owner)
        if job is None:
            return None
        place = None
        if job.status is JobStatus.QUEUED:
            mine = (job.turn, job.seq)
            place = sum(1 for j in self._s.queued() if (j.turn, j.seq) < mine)
        return job, self._s.results_of(task_uuid), place

    async def finished_result(self, video_uuid: str) -> Result | None:
        for results in self._s.results.values():
            for r in results:
                if r.video_uuid == video_uuid and r.status is not ResultStatus.PROCESSING:
                    return r
        return None

    async def page(
        self, owner: str, after: str | None, limit: int, *, descending: bool = True
    ) -> list[tuple[Job, list[Result]]]:
        mine = sorted(
            (j for j in self._s.jobs.values() if j.owner == owner),
            key=lambda j: (j.created_at, j.task_uuid),
            reverse=descending,
        )
        if after is not None:
            ids = [j.task_uuid for j in mine]
            if after not in ids:
                raise NotFound(f"No video with id {after}.", parameter="after")
            mine = mine[ids.index(after) + 1 :]
        return [(j, self._s.results_of(j.task_uuid)) for j in mine[:limit]]

    async def delete(self, task_uuid: str, owner: str) -> tuple[Job, list[Result]] | None:
        job = self._owned(task_uuid, owner)
        if job is None:
            return None
        if job.status is JobStatus.RUNNING:
            raise Conflict(
                f"Task {task_uuid} is running: cancel it, then delete it once it stops.",
                code="taskRunning",
                parameter="taskUUID",
            )
        del self._s.jobs[task_uuid]
        if job.status is JobStatus.QUEUED:
            self._s.left_queue(job.owner, job.turn)
        removed = self._s.results.pop(task_uuid, [])
        for d in [d for d in self._s.deliveries.values() if d.task_uuid == task_uuid]:
            del self._s.deliveries[d.id]
        return job, removed

    async def cancel(self, task_uuid: str, owner: str | None) -> Job:
        job = self._owned(task_uuid, owner)
        if job is None:
            raise NotFound(f"No task with taskUUID {task_uuid}.", parameter="taskUUID")
        if job.status is JobStatus.QUEUED:
            code, message = CANCELED.code, CANCELED.message
            job = replace(
                job,
                status=JobStatus.CANCELED,
                cancel_requested=True,
                finished_at=self._s.clock(),
                error_code=code,
                error_message=message,
            )
            self._s.jobs[task_uuid] = job
            self._s.left_queue(job.owner, job.turn)
            self._s.fail_pending(task_uuid, code, message)
            self._s.add_deliveries(task_uuid, failure_webhook(job.spec.webhook_url))
        elif job.status is JobStatus.RUNNING:
            job = replace(job, cancel_requested=True)
        self._s.jobs[task_uuid] = job
        return job

    async def deliveries(self, task_uuid: str) -> list[Delivery]:
        mine = [d for d in self._s.deliveries.values() if d.task_uuid == task_uuid]
        return sorted(mine, key=lambda d: (d.created_at, d.id))


class MemoryQueue:
    """`QueueStore` in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    def _claimable(self, job: Job, now: float) -> bool:
        if job.cancel_requested:
            return False
        if job.status is JobStatus.QUEUED:
            return True
        return (
            job.status is JobStatus.RUNNING
            and job.lease_expires_at is not None
            and job.lease_expires_at < now
            and job.attempts < job.max_attempts
        )

    def _at_limit(self, default_max_running: int) -> set[str]:
        """Owners running as many jobs as their limit allows."""
        running: dict[str, int] = {}
        for j in self._s.jobs.values():
            if j.status is JobStatus.RUNNING:
                running[j.owner] = running.get(j.owner, 0) + 1
        limits = {key.id: key.limits.max_running for _, key in self._s.keys.values()}
        full = set()
        for owner, n in running.items():
            limit = limits.get(owner)
            limit = default_max_running if limit is None else limit
            if limit and n >= limit:
                full.add(owner)
        return full

    async def claim(
        self,
        worker_id: str,
        lease_s: float,
        *,
        max_running: int = 0,
        capability: Capability = ANY,
    ) -> Claim | None:
        now = self._s.clock()
        full = self._at_limit(max_running)
        ready = [
            j
            for j in self._s.jobs.values()
            if self._claimable(j, now)
            and not (j.status is JobStatus.QUEUED and j.owner in full)
            and capability.fits(j)
        ]
        if not ready:
            return None
        # A running job whose lease ran out first, then the queue in order.
        job = min(ready, key=lambda j: (j.status is JobStatus.QUEUED, j.turn, j.seq))
        token = secrets.token_hex(16)
        job = replace(
            job,
            status=JobStatus.RUNNING,
            attempts=job.attempts + 1,
            lease_owner=worker_id,
            lease_token=token,
            lease_expires_at=now + lease_s,
            started_at=job.started_at if job.started_at is not None else now,
        )
        self._s.jobs[job.task_uuid] = job
        return Claim(job=job, token=token, results=tuple(self._s.results_of(job.task_uuid)))

    def _fence(self, task_uuid: str, token: str) -> Job:
        job = self._s.jobs.get(task_uuid)
        if job is None or job.lease_token != token or job.status is not JobStatus.RUNNING:
            raise LeaseLost(task_uuid)
        return job

    async def wait(self, timeout_s: float) -> None:
        seen = self._s.arrivals
        with anyio.move_on_after(timeout_s):
            while self._s.arrivals == seen:  # noqa: ASYNC110 - one process: a short poll
                await anyio.sleep(0.005)

    async def heartbeat(self, task_uuid: str, token: str, lease_s: float) -> bool:
        job = replace(self._fence(task_uuid, token), lease_expires_at=self._s.clock() + lease_s)
        self._s.jobs[task_uuid] = job
        return job.cancel_requested

    async def progress(self, task_uuid: str, token: str, percent: int) -> bool:
        job = replace(self._fence(task_uuid, token), progress=max(0, min(100, percent)))
        self._s.jobs[task_uuid] = job
        return job.cancel_requested

    async def complete_result(
        self,
        task_uuid: str,
        token: str,
        update: ResultUpdate,
        deliveries: Sequence[NewDelivery] = (),
        *,
        last: bool = False,
    ) -> None:
        try:
            self._fence(task_uuid, token)
        except LeaseLost:
            # A completion tried again after it landed: done, not lost (as the SQL store).
            found = self._s.results.get(task_uuid, [])
            if any(
                r.video_uuid == update.video_uuid and r.blob_key == update.blob_key for r in found
            ):
                return
            raise
        now = self._s.clock()

        def done(r: Result) -> Result:
            if r.video_uuid != update.video_uuid:
                return r
            return replace(
                r,
                status=ResultStatus.SUCCESS,
                blob_key=update.blob_key,
                content_type=update.content_type,
                size_bytes=update.size_bytes,
                nsfw=update.nsfw,
                completed_at=now,
                expires_at=update.expires_at,
            )

        self._s.set_results(task_uuid, done)
        self._s.add_deliveries(task_uuid, deliveries)
        if last:
            await self.finish(task_uuid, token, JobStatus.SUCCEEDED)

    async def finish(
        self,
        task_uuid: str,
        token: str,
        status: JobStatus,
        error_code: str | None = None,
        error_message: str | None = None,
        deliveries: Sequence[NewDelivery] = (),
    ) -> None:
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, got {status}")
        job = self._fence(task_uuid, token)
        self._s.jobs[task_uuid] = replace(
            job,
            status=status,
            finished_at=self._s.clock(),
            progress=100 if status is JobStatus.SUCCEEDED else job.progress,
            lease_token=None,
            lease_expires_at=None,
            error_code=error_code,
            error_message=error_message,
        )
        self._s.fail_pending(task_uuid, error_code, error_message)
        self._s.add_deliveries(task_uuid, deliveries)

    async def release(self, task_uuid: str, token: str) -> None:
        job = self._fence(task_uuid, token)
        if job.cancel_requested:  # queued, it could be neither claimed nor reaped
            hook = job.spec.webhook_url
            await self.finish(
                task_uuid, token, JobStatus.CANCELED, CANCELED.code, CANCELED.message,
                failure_webhook(hook),
            )  # fmt: skip
            return
        self._s.jobs[task_uuid] = replace(
            job,
            status=JobStatus.QUEUED,
            turn=self._s.requeue_turn(job),  # first of its key's: it had its turn
            attempts=job.attempts - 1,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
        )

    async def reap_expired(self) -> int:
        now = self._s.clock()
        count = 0
        for job in list(self._s.jobs.values()):
            expired = job.lease_expires_at is not None and job.lease_expires_at < now
            spent = job.attempts >= job.max_attempts or job.cancel_requested
            if job.status is not JobStatus.RUNNING or not expired or not spent:
                continue
            status, why = reaped(job.cancel_requested)
            self._s.jobs[job.task_uuid] = replace(
                job,
                status=status,
                finished_at=now,
                lease_token=None,
                lease_expires_at=None,
                error_code=why.code,
                error_message=why.message,
            )
            self._s.fail_pending(job.task_uuid, why.code, why.message)
            self._s.add_deliveries(job.task_uuid, failure_webhook(job.spec.webhook_url))
            count += 1
        return count

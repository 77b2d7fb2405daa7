"""The data of a `MemoryStore`, and what its parts do to it alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from openimagine.domain.deliveries import Delivery, DeliveryStatus, NewDelivery
from openimagine.domain.jobs import Job, JobStatus, Result, ResultStatus
from openimagine.domain.records import ApiKey, MediaItem, WorkerInfo
from openimagine.domain.usage import UsageEntry


@dataclass
class State:
    """Everything stored, and the clock."""

    clock: Callable[[], float] = time.time
    jobs: dict[str, Job] = field(default_factory=dict)
    results: dict[str, list[Result]] = field(default_factory=dict)  # by task, in order
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    delivery_leases: dict[str, float] = field(default_factory=dict)
    keys: dict[str, tuple[str, ApiKey]] = field(default_factory=dict)  # id → (hash, key)
    media: dict[str, MediaItem] = field(default_factory=dict)
    workers: dict[str, WorkerInfo] = field(default_factory=dict)
    arrivals: int = 0  #: jobs created so far, which `wait` watches
    usage: dict[str, UsageEntry] = field(default_factory=dict)  #: the ledger, by videoUUID
    spend: dict[tuple[str, int], float] = field(default_factory=dict)  #: (owner, UTC day) → $
    next_turn: dict[str, int] = field(default_factory=dict)  #: fair share, as `sql.turns`

    def queued(self, owner: str | None = None) -> list[Job]:
        """The queued jobs (of `owner`)."""
        return [
            j
            for j in self.jobs.values()
            if j.status is JobStatus.QUEUED and (owner is None or j.owner == owner)
        ]

    def allot(self, owner: str) -> int:
        """The turn of `owner`'s next queued job (see `sql.turns`)."""
        turns = [j.turn for j in self.queued()]
        head = min(turns) if turns else max(self.next_turn.values(), default=0)
        turn = max(self.next_turn.get(owner, head), head)
        if not self.queued(owner):  # it joins this round, or the next if it just had its turn
            turn = min(turn, head + 1)
        self.next_turn[owner] = turn + 1
        return turn

    def left_queue(self, owner: str, turn: int) -> None:
        """A queued job of `owner` at `turn` was canceled or deleted: close the gap."""
        mine = self.queued(owner)
        if any(j.turn < turn for j in mine):
            for j in mine:
                if j.turn > turn:
                    self.jobs[j.task_uuid] = replace(j, turn=j.turn - 1)
        mine = self.queued(owner)
        self.next_turn[owner] = max(j.turn for j in mine) + 1 if mine else turn

    def requeue_turn(self, job: Job) -> int:
        """The turn of a running job going back to the queue: before its key's first."""
        mine = [j.turn for j in self.queued(job.owner) if j.task_uuid != job.task_uuid]
        others = [j.turn for j in self.queued() if j.task_uuid != job.task_uuid]
        turn = min(mine) - 1 if mine else min(others) if others else job.turn
        self.next_turn[job.owner] = max(mine, default=turn) + 1
        return turn

    def results_of(self, task_uuid: str) -> list[Result]:
        return list(self.results.get(task_uuid, []))

    def set_results(self, task_uuid: str, change: Callable[[Result], Result]) -> None:
        """Change a job's results; those that finish enter the ledger."""
        before = self.results[task_uuid]
        self.results[task_uuid] = after = [change(r) for r in before]
        for old, new in zip(before, after, strict=True):
            if old.status is ResultStatus.PROCESSING and new.status is not ResultStatus.PROCESSING:
                entry = UsageEntry.of(self.jobs[task_uuid], new, new.completed_at or 0.0)
                self.usage[new.video_uuid] = entry

    def fail_pending(self, task_uuid: str, code: str | None, message: str | None) -> None:
        now = self.clock()

        def fail(r: Result) -> Result:
            if r.status is not ResultStatus.PROCESSING:
                return r
            return replace(
                r,
                status=ResultStatus.ERROR,
                error_code=code or "inferenceError",
                error_message=message or "The task did not complete.",
                completed_at=now,
            )

        self.set_results(task_uuid, fail)

    def add_deliveries(self, task_uuid: str, new: Sequence[NewDelivery]) -> None:
        now = self.clock()
        for d in new:
            delivery_id = str(uuid.uuid4())
            self.deliveries[delivery_id] = Delivery(
                id=delivery_id,
                task_uuid=task_uuid,
                kind=d.kind,
                event=d.event,
                url=d.url,
                video_uuid=d.video_uuid,
                status=DeliveryStatus.PENDING,
                attempts=0,
                last_error=None,
                next_attempt_at=now,
                created_at=now,
                delivered_at=None,
            )

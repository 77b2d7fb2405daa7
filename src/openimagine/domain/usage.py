"""The usage ledger: one entry for every result that finished, what a key is billed by."""

from __future__ import annotations

from dataclasses import dataclass

from openimagine.domain.jobs import Job, Result, ResultStatus


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """A finished result as billed: its cost only when it succeeded."""

    video_uuid: str
    task_uuid: str
    owner: str
    status: ResultStatus
    seconds: float  #: the length of video asked for
    width: int
    height: int
    cost: float  #: dollars charged (0 for a result that failed)
    recorded_at: float

    @classmethod
    def of(cls, job: Job, result: Result, now: float) -> UsageEntry:
        """The entry for `result` of `job`, finished at `now`."""
        charged = result.cost if result.status is ResultStatus.SUCCESS else 0.0
        spec = job.spec
        return cls(
            result.video_uuid, job.task_uuid, job.owner, result.status, float(spec.seconds),
            spec.width, spec.height, charged or 0.0, now,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """One key's usage over a period."""

    owner: str
    tasks: int  #: tasks with at least one finished result
    results: int  #: finished results, succeeded or failed
    failed: int
    seconds: float  #: of video delivered (succeeded results)
    cost: float  #: dollars

    @classmethod
    def none(cls, owner: str) -> UsageTotals:
        """No usage."""
        return cls(owner, 0, 0, 0, 0.0, 0.0)

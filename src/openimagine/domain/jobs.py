"""Jobs and their results: status enums and the typed records the store reads and writes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from openimagine.domain.generation import GenerationJob


class JobStatus(enum.StrEnum):
    """Lifecycle of a job (one submitted video task)."""

    QUEUED = "queued"  #: waiting for a worker
    RUNNING = "running"  #: leased by a worker
    SUCCEEDED = "succeeded"  #: every result is ready
    FAILED = "failed"  #: gave up; unfinished results carry the error
    CANCELED = "canceled"  #: stopped on request

    @property
    def terminal(self) -> bool:
        """Whether no further transition is possible."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class ResultStatus(enum.StrEnum):
    """Status of one result (one of a job's `numberResults`)."""

    PROCESSING = "processing"
    SUCCESS = "success"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job ended without its results: a stable code and a message for people."""

    code: str
    message: str


CANCELED = Failure("taskCancelled", "The task was cancelled.")
WORKER_LOST = Failure(
    "workerLost", "The worker running this task stopped responding too many times."
)


def reaped(cancel_requested: bool) -> tuple[JobStatus, Failure]:
    """How a job whose lease ran out for good ends: canceled if that was asked, else failed."""
    return (JobStatus.CANCELED, CANCELED) if cancel_requested else (JobStatus.FAILED, WORKER_LOST)


@dataclass(frozen=True, slots=True)
class Job:
    """A job row as the service and workers see it."""

    task_uuid: str
    owner: str
    task_type: str
    spec: GenerationJob
    request_hash: str
    status: JobStatus
    attempts: int
    max_attempts: int
    progress: int
    cancel_requested: bool
    number_results: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: float | None
    error_code: str | None
    error_message: str | None
    seq: int = 0  #: its enqueue number (smaller first within a turn)
    turn: int = 0  #: its round in the claim order (fair share: keys take turns)

    @property
    def model(self) -> str:
        """The model card id it runs on."""
        return self.spec.model


@dataclass(frozen=True, slots=True)
class Capability:
    """Which jobs a worker claims: those on one of its `models` (model AIRs; empty: any)
    no bigger than `max_pixel_frames` (width × height × frames its device can take; 0: any).
    A fleet can so mix models and GPU kinds: a small GPU leaves the 720p × 15 s jobs to a
    big one."""

    models: tuple[str, ...] = ()
    max_pixel_frames: int = 0

    def fits(self, job: Job) -> bool:
        """Whether a worker of this capability can run `job`."""
        if self.models and job.model not in self.models:
            return False
        return not self.max_pixel_frames or job.spec.pixel_frames <= self.max_pixel_frames


ANY = Capability()  #: a worker that claims every job


@dataclass(frozen=True, slots=True)
class Result:
    """One result of a job, allocated (with its videoUUID and seed) at submit."""

    video_uuid: str
    task_uuid: str
    index: int
    seed: int
    status: ResultStatus
    blob_key: str | None
    content_type: str | None
    size_bytes: int | None
    cost: float | None
    nsfw: bool | None
    error_code: str | None
    error_message: str | None
    completed_at: float | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A job leased to one worker; `token` fences every write the worker makes."""

    job: Job
    token: str
    results: tuple[Result, ...]


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to insert, with its results pre-allocated (one videoUUID, seed and cost each)."""

    task_uuid: str
    owner: str
    task_type: str
    spec: GenerationJob
    request_hash: str
    max_attempts: int
    video_uuids: Sequence[str]
    seeds: Sequence[int]
    costs: Sequence[float]

    def queued(self, now: float, seq: int, turn: int) -> Job:
        """The job as inserted: queued at `now` with enqueue number `seq`, in round `turn`."""
        return Job(
            task_uuid=self.task_uuid,
            owner=self.owner,
            task_type=self.task_type,
            spec=self.spec,
            request_hash=self.request_hash,
            status=JobStatus.QUEUED,
            attempts=0,
            max_attempts=self.max_attempts,
            progress=0,
            cancel_requested=False,
            number_results=len(self.video_uuids),
            created_at=now,
            started_at=None,
            finished_at=None,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
            error_code=None,
            error_message=None,
            seq=seq,
            turn=turn,
        )

    def pending_results(self) -> list[Result]:
        """Its results, each processing with its videoUUID, seed and cost."""
        plan = zip(self.video_uuids, self.seeds, self.costs, strict=True)
        return [
            Result(video, self.task_uuid, i, seed, ResultStatus.PROCESSING, None, None, None,
                   cost, None, None, None, None, None)
            for i, (video, seed, cost) in enumerate(plan)
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResultUpdate:
    """A finished result, written by the worker that holds the lease."""

    video_uuid: str
    blob_key: str
    content_type: str
    size_bytes: int
    nsfw: bool | None
    expires_at: float

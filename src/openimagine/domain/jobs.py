"""Jobs and results: status enums, typed records and the pure state transitions."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobStatus(enum.StrEnum):
    """Lifecycle of a job (one submitted videoInference task)."""

    QUEUED = "queued"  #: waiting for a worker
    RUNNING = "running"  #: leased by a worker
    SUCCEEDED = "succeeded"  #: every result is ready
    FAILED = "failed"  #: gave up; results carry the error
    CANCELED = "canceled"  #: stopped on request

    @property
    def terminal(self) -> bool:
        """Whether no further transition is possible."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class ResultStatus(enum.StrEnum):
    """Status of one result item, as Runware's getResponse reports it."""

    PROCESSING = "processing"
    SUCCESS = "success"
    ERROR = "error"


_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED}),
    # RUNNING -> QUEUED: a lease expired or a worker handed the job back on shutdown.
    JobStatus.RUNNING: frozenset(
        {JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class InvalidTransition(ValueError):
    """A state change that the lifecycle does not allow."""


def transition(current: JobStatus, new: JobStatus) -> JobStatus:
    """Return `new` if the lifecycle allows current → new, else raise InvalidTransition."""
    if new not in _ALLOWED[current]:
        raise InvalidTransition(f"job cannot go from {current} to {new}")
    return new


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """Whether current → new is allowed."""
    return new in _ALLOWED[current]


@dataclass(frozen=True, slots=True)
class Job:
    """A job row as the service and workers see it."""

    task_uuid: str
    owner: str
    task_type: str
    model: str
    request: str  #: the validated request, JSON (see domain.params.VideoRequest)
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


@dataclass(frozen=True, slots=True)
class Result:
    """One `numberResults` item of a job, allocated (with its videoUUID) at submit."""

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

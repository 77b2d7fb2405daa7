"""Records beside jobs: uploaded media, API keys and worker processes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from openimagine.domain.jobs import ANY, Capability
from openimagine.domain.quotas import Limits


class MediaKind(enum.StrEnum):
    """What an uploaded or fetched input is."""

    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class MediaItem:
    """An input stored for a key (imageUpload, mediaStorage, or fetched at submit)."""

    media_uuid: str
    owner: str
    kind: MediaKind
    blob_key: str
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (only its hash is kept)."""

    id: str
    label: str
    prefix: str
    created_at: float
    revoked_at: float | None
    configured: bool = False  #: given with `--api-key`: active only while the flag names it
    limits: Limits = field(default_factory=Limits)  #: overrides of the quota settings


class WorkerState(enum.StrEnum):
    """A worker process's state, as its heartbeat row shows it."""

    LOADING = "loading"  #: loading its model
    READY = "ready"  #: claiming jobs
    STOPPED = "stopped"  #: exited cleanly


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process as it registered itself, and the task it runs now."""

    id: str
    host: str
    pid: int
    state: WorkerState
    backend: str
    weights: str
    random_weights: bool
    started_at: float
    heartbeat_at: float
    #: The task whose lease it holds (a running job's `lease_owner`), None when idle. Read
    #: from the jobs, never written with the worker's row: `register` ignores it.
    task_uuid: str | None = None
    capability: Capability = ANY  #: which jobs it claims (its settings)

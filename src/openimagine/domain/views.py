"""What the service hands back to the doors: a job with its results as a user sees them."""

from __future__ import annotations

from dataclasses import dataclass

from openimagine.domain.deliveries import Delivery
from openimagine.domain.jobs import Job, Result
from openimagine.domain.records import MediaItem


@dataclass(frozen=True, slots=True)
class ResultView:
    """One result, with where its file can be downloaded while it is kept."""

    result: Result
    url: str | None  #: a signed (or presigned) URL that expires with the result
    upload: Delivery | None = None  #: its PUT to `uploadEndpoint`, when one was asked for


@dataclass(frozen=True, slots=True)
class JobView:
    """A job, its results in order, and how many jobs run before it while it is queued."""

    job: Job
    results: tuple[ResultView, ...]
    queue_position: int | None = None


@dataclass(frozen=True, slots=True)
class MediaView:
    """A stored input and a URL to it."""

    item: MediaItem
    url: str

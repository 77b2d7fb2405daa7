"""`VideoService`: submit, poll, cancel, list and delete video jobs, in domain types."""

from __future__ import annotations

import random
import secrets
import uuid
from fractions import Fraction

import anyio

from openimagine.delivery.blobs import BlobStore
from openimagine.domain.deliveries import Delivery
from openimagine.domain.jobs import Job, NewJob
from openimagine.domain.quotas import Admission
from openimagine.domain.requests import Mode, VideoRequest
from openimagine.domain.views import JobView
from openimagine.errors import Conflict, NotFound
from openimagine.models.card import ModelCard
from openimagine.models.pricing import as_float, price, quote
from openimagine.service.inputs import InputResolver
from openimagine.service.quotas import Quotas
from openimagine.service.views import JobViews
from openimagine.store.protocols import JobStore

SEED_MAX = 2**63 - 1
# Seeds only need to differ, not to be secret: perf, a seeded PRNG is a fraction of the cost
# of the OS's random bytes on every submit.
_SEEDS = random.Random(secrets.randbits(64))  # noqa: S311
TASK_TYPE = "videoInference"
_NO_QUOTA = Admission()


class VideoService:
    """What every door calls.

    Args:
        jobs: The store's job part.
        inputs: Resolves a request's inputs, size and length.
        views: Renders jobs with their URLs.
        blobs: Where result files live (deleted with their job).
        card: The model served.
        max_attempts: Tries a job gets before a lost worker fails it.
        quotas: Each key's limits (None: none).
    """

    def __init__(
        self,
        jobs: JobStore,
        inputs: InputResolver,
        views: JobViews,
        blobs: BlobStore,
        card: ModelCard,
        *,
        max_attempts: int,
        quotas: Quotas | None = None,
    ) -> None:
        self.quotas = quotas
        self.jobs = jobs
        self.inputs = inputs
        self.views = views
        self.blobs = blobs
        self.card = card
        self.max_attempts = max_attempts

    async def submit(
        self, owner: str, task_uuid: str, request: VideoRequest, door: str = "runware"
    ) -> Job:
        """Resolve, price and queue a request; the same taskUUID and request again returns
        the job already queued, another request with it is a `Conflict`. `door`: the API it
        came through, when its reads answer in that API's shape (default: Runware's)."""
        fingerprint = request.fingerprint()
        if request.has_inputs:
            # A retried submit must not fetch and store its inputs again; the create alone
            # settles idempotency for text-to-video (one read less on the hot path).
            existing = await self.jobs.get(task_uuid, owner)
            if existing is not None:
                if existing[0].request_hash == fingerprint:
                    return existing[0]
                raise Conflict(
                    f"taskUUID {task_uuid} was already used for a different request.",
                    parameter="taskUUID",
                )
            self.inputs.check(request)
            if self.quotas is not None:
                # A key its quotas refuse gets its 429 before any input is fetched or
                # decoded; the store checks again, exactly, when the job is inserted.
                await self.quotas.precheck(owner, _least_cost(self.card, request))
        spec = await self.inputs.resolve(owner, request, door)
        base = request.seed if request.seed is not None else _SEEDS.getrandbits(32) + 1
        n = request.number_results
        cost = as_float(price(self.card, spec))
        quota = _NO_QUOTA if self.quotas is None else await self.quotas.admission(owner)
        job, _, _ = await self.jobs.create(
            NewJob(
                task_uuid=task_uuid,
                owner=owner,
                task_type=TASK_TYPE,
                spec=spec,
                request_hash=fingerprint,
                max_attempts=self.max_attempts,
                video_uuids=[str(uuid.uuid4()) for _ in range(n)],
                seeds=[1 + (base + i - 1) % SEED_MAX for i in range(n)],  # seeds are 1..SEED_MAX
                costs=[cost] * n,
            ),
            quota,
        )
        return job

    async def get(self, owner: str, task_uuid: str) -> JobView:
        """A job as its owner sees it; `NotFound` for anyone else."""
        view = await self.views.load(task_uuid, owner)
        if view is None:
            raise _not_found(task_uuid)
        return view

    async def cancel(self, owner: str, task_uuid: str) -> Job:
        """Cancel a job (queued: at once; running: within one denoising step)."""
        return await self.jobs.cancel(task_uuid, owner)

    async def deliveries(self, owner: str, task_uuid: str) -> list[Delivery]:
        """The webhook and upload deliveries of one of the owner's jobs."""
        if await self.jobs.get(task_uuid, owner) is None:
            raise _not_found(task_uuid)
        return await self.jobs.deliveries(task_uuid)

    async def page(
        self, owner: str, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[JobView], bool]:
        """A page of the owner's jobs, and whether more follow."""
        rows = await self.jobs.page(owner, after, limit + 1, descending=descending)
        return [self.views.view(job, results) for job, results in rows[:limit]], len(rows) > limit

    async def delete(self, owner: str, task_uuid: str) -> Job:
        """Delete a job that is not running, its results and their files; `NotFound`, or
        `Conflict` while it runs. Its inputs stay until their own expiry (another task may
        use them)."""
        removed = await self.jobs.delete(task_uuid, owner)
        if removed is None:
            raise _not_found(task_uuid)
        job, results = removed
        for result in results:
            if result.blob_key is not None:
                await anyio.to_thread.run_sync(self.blobs.delete, result.blob_key)
        return job


def _least_cost(card: ModelCard, request: VideoRequest) -> float:
    """The least a request can cost before its inputs are known: the size of video-to-video
    follows its source (so the cheapest tier is assumed), and without `duration` its length
    too (at least the card's shortest); the source's own seconds are not counted."""
    image = request.mode is Mode.I2V
    if request.width is not None and request.height is not None:
        tier = card.tier(request.width, request.height)
    elif image:
        tier = request.resolution or card.default_resolution
    else:
        tier = min(card.prices.per_second, key=card.prices.per_second.__getitem__)
    seconds = request.duration_s if request.duration_s is not None else card.duration.min
    each = quote(card, tier=tier, output_seconds=Fraction(seconds), image_input=image)
    return as_float(each) * request.number_results


def _not_found(task_uuid: str) -> NotFound:
    return NotFound(f"No task found with taskUUID {task_uuid}.", parameter="taskUUID")

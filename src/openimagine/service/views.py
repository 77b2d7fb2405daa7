"""Jobs as users see them: results with download URLs, uploads with their status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from openimagine.delivery.blobs import BlobStore
from openimagine.domain.deliveries import Delivery, DeliveryKind
from openimagine.domain.jobs import Job, Result, ResultStatus
from openimagine.domain.views import JobView, ResultView
from openimagine.store.protocols import JobStore


class JobViews:
    """Builds `JobView`s; the URLs come from the blob store when they are read, so they
    always point where the file is now."""

    def __init__(self, jobs: JobStore, blobs: BlobStore) -> None:
        self.jobs = jobs
        self.blobs = blobs

    def view(
        self,
        job: Job,
        results: Sequence[Result],
        queue_position: int | None = None,
        uploads: Mapping[str, Delivery] | None = None,
    ) -> JobView:
        """A job and its results, with URLs (and upload status, by videoUUID)."""
        uploads = uploads or {}
        return JobView(
            job=job,
            results=tuple(ResultView(r, self._url(r), uploads.get(r.video_uuid)) for r in results),
            queue_position=queue_position,
        )

    def _url(self, result: Result) -> str | None:
        kept = result.status is ResultStatus.SUCCESS and result.blob_key is not None
        if not kept or result.blob_key is None or result.expires_at is None:
            return None
        return self.blobs.url(result.blob_key, result.expires_at)

    async def load(self, task_uuid: str, owner: str | None) -> JobView | None:
        """A job's whole view, with its queue place; None when the owner has no such job."""
        found = await self.jobs.get_placed(task_uuid, owner)
        if found is None:
            return None
        job, results, place = found
        uploads: dict[str, Delivery] = {}
        if job.spec.upload_endpoint is not None:
            for delivery in await self.jobs.deliveries(task_uuid):
                if delivery.kind is DeliveryKind.UPLOAD and delivery.video_uuid is not None:
                    uploads[delivery.video_uuid] = delivery
        return self.view(job, results, place, uploads)

"""Webhook bodies and upload sources, rendered when the outbox sends them: a result's item as
getResponse would show it now (its URL signed or presigned at that moment), or the errors of
a failed task."""

from __future__ import annotations

import json
from typing import Any

from openimagine.delivery.outbox import Gone, UploadSource
from openimagine.domain.deliveries import Delivery, DeliveryEvent
from openimagine.domain.jobs import ResultStatus
from openimagine.domain.views import JobView, ResultView
from openimagine.runware.items import error_item, result_item
from openimagine.service.views import JobViews


class RunwarePayloads:
    """The outbox's `Payloads` in the Runware shape: `{"data": [item]}` per result, and
    `{"errors": [...]}` when the task fails or is cancelled."""

    def __init__(self, views: JobViews) -> None:
        self.views = views

    async def _view(self, delivery: Delivery) -> JobView:
        found = await self.views.jobs.get(delivery.task_uuid, None)
        if found is None:
            raise Gone(f"task {delivery.task_uuid} was deleted")
        return self.views.view(*found)

    def _result(self, view: JobView, delivery: Delivery) -> ResultView:
        for result in view.results:
            if result.result.video_uuid == delivery.video_uuid:
                return result
        raise Gone(f"result {delivery.video_uuid} was deleted")

    async def webhook_body(self, delivery: Delivery) -> bytes:
        """The POST body for a delivery's event."""
        view = await self._view(delivery)
        body: dict[str, Any]
        if delivery.event is DeliveryEvent.RESULT_READY:
            body = {"data": [result_item(view.job, self._result(view, delivery))]}
        else:
            failed = [r for r in view.results if r.result.status is ResultStatus.ERROR]
            body = {"errors": [error_item(view.job, r) for r in failed]}
        return json.dumps(body).encode()

    async def upload_source(self, delivery: Delivery) -> UploadSource:
        """The finished file of the result a delivery names."""
        result = self._result(await self._view(delivery), delivery).result
        if result.blob_key is None or result.content_type is None:
            raise Gone("the result file is gone (its TTL expired before the upload)")
        return UploadSource(result.blob_key, result.content_type)

"""A Runware task array, run against the services: the same code serves REST and WebSocket.

Each task is parsed and validated here (into domain types), handed to the service, and its
answer rendered as a Runware item; a failing task never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openimagine.config import DeliverySettings
from openimagine.domain.records import MediaKind
from openimagine.errors import AuthError, InvalidInput, OpenImagineError, QuotaExceeded
from openimagine.media.sources import SourceKind, classify, decode_inline
from openimagine.models.card import ModelCard
from openimagine.models.rules import check_new_task_uuid, check_task_uuid
from openimagine.observability import task_context
from openimagine.runware.errors import error_item, http_status
from openimagine.runware.fields import get_choice, get_str, reject_unknown
from openimagine.runware.items import acknowledgement, job_items, media_item
from openimagine.runware.validation import validate_video_task
from openimagine.service.media import MediaService
from openimagine.service.videos import VideoService

log = logging.getLogger(__name__)

MAX_TASKS_PER_MESSAGE = 100
TASK_TYPES = (
    "authentication",
    "ping",
    "videoInference",
    "getResponse",
    "imageUpload",
    "mediaStorage",
)


@dataclass
class Reply:
    """What one message of tasks produced."""

    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    retry_after_s: int | None = None  #: with a 429: when the key may try again

    def envelope(self) -> dict[str, Any]:
        """`{"data": [...]}` and/or `{"errors": [...]}`."""
        out: dict[str, Any] = {}
        if self.data or not self.errors:
            out["data"] = self.data
        if self.errors:
            out["errors"] = self.errors
        return out

    def add_error(
        self, err: OpenImagineError, task_type: Any = None, task_uuid: Any = None
    ) -> None:
        """Record an error item; the reply's HTTP status is the first error's."""
        self.errors.append(
            error_item(
                err,
                task_type if isinstance(task_type, str) else None,
                task_uuid if isinstance(task_uuid, str) else None,
            )
        )
        if not self.data and self.status == 200:
            self.status = http_status(err)
            if isinstance(err, QuotaExceeded):
                self.retry_after_s = err.retry_after_s


def parse_tasks(body: Any) -> list[Any]:
    """The task array of a message, or InvalidInput naming what is wrong."""
    if not isinstance(body, list):
        raise InvalidInput(
            "The request body must be a JSON array of task objects.",
            code="invalidRequestBody",
            parameter="body",
        )
    if not body:
        raise InvalidInput("The task array is empty.", code="invalidRequestBody", parameter="body")
    if len(body) > MAX_TASKS_PER_MESSAGE:
        raise InvalidInput(
            f"At most {MAX_TASKS_PER_MESSAGE} tasks per request.",
            code="tooManyTasks",
            parameter="body",
            max=MAX_TASKS_PER_MESSAGE,
        )
    return body


Handler = Callable[[str, dict[str, Any], Reply], Awaitable[None]]


class TaskProcessor:
    """Runs authenticated tasks (everything but `authentication`) against the services.

    Args:
        videos: Submit and poll.
        media: Uploads.
        card: The model whose rules a videoInference task is validated against.
        limits: The server's `ttl` default and bound.
        max_upload_bytes: The largest upload accepted.
    """

    def __init__(
        self,
        videos: VideoService,
        media: MediaService,
        card: ModelCard,
        limits: DeliverySettings,
        max_upload_bytes: int,
    ) -> None:
        self.videos = videos
        self.media = media
        self.card = card
        self.limits = limits
        self.max_upload_bytes = max_upload_bytes
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "videoInference": self._video_inference,
            "getResponse": self._get_response,
            "imageUpload": self._image_upload,
            "mediaStorage": self._media_storage,
        }

    async def run(self, owner: str, tasks: list[Any], reply: Reply) -> None:
        """Process each task in order; a failing task never stops the others."""
        for task in tasks:
            task_type = task.get("taskType") if isinstance(task, dict) else None
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            # its log lines carry its UUID (JSON logs: `task_uuid`)
            with task_context(task_uuid if isinstance(task_uuid, str) else None):
                try:
                    await self._handler(task)(owner, task, reply)
                except OpenImagineError as err:
                    reply.add_error(err, task_type, task_uuid)
                except Exception:
                    log.exception("task %s failed", task_uuid)
                    reply.add_error(
                        OpenImagineError("Internal server error."), task_type, task_uuid
                    )

    def _handler(self, task: Any) -> Handler:
        if not isinstance(task, dict):
            raise InvalidInput(
                "Each task must be a JSON object.", code="invalidTask", parameter="taskType"
            )
        task_type = task.get("taskType")
        if task_type is None:
            raise InvalidInput(
                "Missing required parameter: taskType.",
                code="missingTaskType",
                parameter="taskType",
            )
        if task_type == "authentication":
            raise AuthError(
                "The authentication task must come first.",
                code="invalidAuthentication",
                parameter="taskType",
            )
        handler = self._handlers.get(task_type) if isinstance(task_type, str) else None
        if handler is None:
            raise InvalidInput(
                f"Unsupported taskType {task_type!r}.",
                code="unsupportedTaskType",
                parameter="taskType",
                allowedValues=list(TASK_TYPES),
            )
        return handler

    async def _ping(self, _owner: str, task: dict[str, Any], reply: Reply) -> None:
        item: dict[str, Any] = {"taskType": "ping", "pong": True}
        if isinstance(task.get("taskUUID"), str):
            item["taskUUID"] = task["taskUUID"]
        reply.data.append(item)

    # compat: task UUIDs are stored lower-case (compared case-insensitively), but the SDKs
    # match each reply item by the taskUUID string they sent, so replies echo the sender's
    # spelling (`task["taskUUID"]`, a string once checked).

    async def _video_inference(self, owner: str, task: dict[str, Any], reply: Reply) -> None:
        task_uuid = check_new_task_uuid(task.get("taskUUID"))
        request = validate_video_task(task, self.card, self.limits)
        await self.videos.submit(owner, task_uuid, request)
        reply.data.append(acknowledgement(task["taskUUID"]))

    async def _get_response(self, owner: str, task: dict[str, Any], reply: Reply) -> None:
        view = await self.videos.get(owner, check_task_uuid(task.get("taskUUID")))
        data, errors = job_items(view)
        for item in (*data, *errors):
            item["taskUUID"] = task["taskUUID"]
        reply.data.extend(data)
        reply.errors.extend(errors)

    async def _image_upload(self, owner: str, task: dict[str, Any], reply: Reply) -> None:
        check_new_task_uuid(task.get("taskUUID"))
        task_uuid: str = task["taskUUID"]
        reject_unknown(task, frozenset({"taskType", "taskUUID", "image"}))
        data, declared = self._inline(task, "image")
        view = await self.media.upload(owner, data, (MediaKind.IMAGE,), "image", declared)
        reply.data.append(media_item("imageUpload", task_uuid, view))

    async def _media_storage(self, owner: str, task: dict[str, Any], reply: Reply) -> None:
        check_new_task_uuid(task.get("taskUUID"))
        task_uuid: str = task["taskUUID"]
        reject_unknown(task, frozenset({"taskType", "taskUUID", "operation", "media"}))
        operation = get_choice(task, "operation", ("upload", "delete")) or "upload"
        if operation == "delete":
            value = get_str(task, "media", required=True) or ""
            removed = await self.media.delete(owner, value, "media")
            reply.data.append(
                {
                    "taskType": "mediaStorage",
                    "taskUUID": task_uuid,
                    "operation": operation,
                    "mediaUUID": removed.media_uuid,
                }
            )
            return
        data, declared = self._inline(task, "media")
        kinds = (MediaKind.IMAGE, MediaKind.VIDEO)
        view = await self.media.upload(owner, data, kinds, "media", declared)
        reply.data.append(media_item("mediaStorage", task_uuid, view))

    def _inline(self, task: dict[str, Any], key: str) -> tuple[bytes, str | None]:
        """An upload's bytes and declared type: only a data URI or base64 is an upload."""
        value = get_str(task, key, required=True) or ""
        source = classify(value)
        if source.kind not in (SourceKind.DATA_URI, SourceKind.BASE64):
            raise InvalidInput(
                f"{key}: upload the media as a data URI or base64.",
                code="unsupportedMediaSource",
                parameter=key,
            )
        return decode_inline(source, key, self.max_upload_bytes)

"""Transport-neutral handling of a Runware task array: the same code serves REST and WS."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from openimagine.errors import AuthError, InvalidInput, OpenImagineError
from openimagine.service import VideoService

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
            err.item(
                task_type if isinstance(task_type, str) else None,
                task_uuid if isinstance(task_uuid, str) else None,
            )
        )
        if not self.data and self.status == 200:
            self.status = err.http_status


def auth_error_item(err: OpenImagineError) -> dict[str, Any]:
    """Auth errors carry taskType "authentication" and no taskUUID: the JS SDK routes them by
    `(taskUUID || taskType) === "authentication"`."""
    return err.item("authentication", None)


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


class TaskProcessor:
    """Runs authenticated tasks (everything but `authentication`) against the service."""

    def __init__(self, service: VideoService) -> None:
        self.service = service

    async def run(self, owner: str, tasks: list[Any], reply: Reply) -> None:
        """Process each task in order; a failing task never stops the others."""
        for task in tasks:
            task_type = task.get("taskType") if isinstance(task, dict) else None
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            try:
                await self._one(owner, task, reply)
            except OpenImagineError as err:
                reply.add_error(err, task_type, task_uuid)
            except Exception:
                log.exception("task %s failed", task_uuid)
                reply.add_error(OpenImagineError("Internal server error."), task_type, task_uuid)

    async def _one(self, owner: str, task: Any, reply: Reply) -> None:
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
        if task_type == "ping":
            reply.data.append(_pong(task))
        elif task_type == "videoInference":
            reply.data.append(await self.service.submit_video(owner, task))
        elif task_type == "getResponse":
            data, errors = await self.service.get_response(owner, task.get("taskUUID"))
            reply.data.extend(data)
            reply.errors.extend(errors)
        elif task_type == "imageUpload":
            reply.data.append(await self.service.upload_image(owner, task))
        elif task_type == "mediaStorage":
            reply.data.append(await self.service.media_storage(owner, task))
        elif task_type == "authentication":
            raise AuthError(
                "The authentication task must come first.",
                code="invalidAuthentication",
                parameter="taskType",
            )
        else:
            raise InvalidInput(
                f"Unsupported taskType {task_type!r}.",
                code="unsupportedTaskType",
                parameter="taskType",
                allowedValues=list(TASK_TYPES),
            )


def _pong(task: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"taskType": "ping", "pong": True}
    if isinstance(task.get("taskUUID"), str):
        item["taskUUID"] = task["taskUUID"]
    return item

"""What the client sends and receives: task building, typed replies, and `ClientError`.

Pure data and parsing on the Runware wire format (no I/O besides reading local media files);
`openimagine.client` does the HTTP.
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8765"
MODEL = "xai:grok-imagine@video"
API_KEY_ENV = "OPENIMAGINE_API_KEY"
_PASS_THROUGH = ("http://", "https://", "data:")
_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
)

MediaSource = str | os.PathLike[str] | bytes


class ClientError(Exception):
    """An error the server reported (a Runware error item), or a failure to reach it.

    Attributes:
        code: The stable error code, e.g. `unsupportedDimensions` or `taskCancelled`.
        message: The human-readable message.
        parameter: The offending request parameter, if the server named one.
        task_uuid: The task the error belongs to, if any.
        status_code: The HTTP status of the reply, if there was one.
        item: The raw error item.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "clientError",
        parameter: str | None = None,
        task_uuid: str | None = None,
        status_code: int | None = None,
        item: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.parameter = parameter
        self.task_uuid = task_uuid
        self.status_code = status_code
        self.item: dict[str, Any] = dict(item or {})

    @classmethod
    def from_item(cls, item: Mapping[str, Any], status_code: int | None = None) -> ClientError:
        """The error an `errors` item describes."""
        parameter = item.get("parameter")
        if isinstance(parameter, list):  # compat: Runware may name several parameters
            parameter = ", ".join(str(p) for p in parameter)
        return cls(
            str(item.get("message") or "The server reported an error."),
            code=str(item.get("code") or "unknownError"),
            parameter=parameter if isinstance(parameter, str) else None,
            task_uuid=item.get("taskUUID") if isinstance(item.get("taskUUID"), str) else None,
            status_code=status_code,
            item=item,
        )

    def __str__(self) -> str:
        where = f", parameter {self.parameter}" if self.parameter else ""
        return f"{self.message} [{self.code}{where}]"


class ServerUnreachable(ClientError):
    """No HTTP answer from the server (refused, timed out, DNS)."""


class WaitTimeout(ClientError, TimeoutError):
    """`wait` gave up before every result of the task was finished."""


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One result of a task, as `getResponse` reports it."""

    task_uuid: str
    status: str  #: processing | success | error
    video_uuid: str | None = None
    progress: int = 0
    video_url: str | None = None
    cost: float | None = None
    seed: int | None = None
    queue_position: int | None = None
    error: ClientError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> VideoItem:
        """Parse a `data` or result `errors` item."""
        status = str(item.get("status") or "processing")
        error = ClientError.from_item(item) if status == "error" else None
        progress = item.get("progress")
        return cls(
            task_uuid=str(item.get("taskUUID", "")),
            status=status,
            video_uuid=item.get("videoUUID"),
            progress=100 if status == "success" else int(progress or 0),
            video_url=item.get("videoURL"),
            cost=item.get("cost"),
            seed=item.get("seed"),
            queue_position=item.get("queuePosition"),
            error=error,
            raw=dict(item),
        )

    @property
    def done(self) -> bool:
        """Whether this result is finished (a video or an error)."""
        return self.status in ("success", "error")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """Every result of one task at one moment."""

    task_uuid: str
    items: tuple[VideoItem, ...]

    @property
    def done(self) -> bool:
        """Whether every result is finished."""
        return bool(self.items) and all(i.done for i in self.items)

    @property
    def status(self) -> str:
        """`processing` until done; then `success`, `error`, or `partial` (some of each)."""
        if not self.done:
            return "processing"
        kinds = {i.status for i in self.items}
        return kinds.pop() if len(kinds) == 1 else "partial"

    @property
    def progress(self) -> int:
        """Percent done over all results."""
        if not self.items:
            return 0
        return sum(100 if i.done else i.progress for i in self.items) // len(self.items)

    @property
    def queue_position(self) -> int | None:
        """The task's place in the queue, when the server reports one."""
        positions = [i.queue_position for i in self.items if i.queue_position is not None]
        return min(positions) if positions else None

    @property
    def videos(self) -> tuple[VideoItem, ...]:
        """The finished videos."""
        return tuple(i for i in self.items if i.status == "success")

    @property
    def errors(self) -> tuple[ClientError, ...]:
        """The errors of failed results."""
        return tuple(i.error for i in self.items if i.error is not None)

    @property
    def cost(self) -> float | None:
        """Total cost of the finished videos, when the task asked for it (`include_cost`)."""
        costs = [i.cost for i in self.videos if i.cost is not None]
        return round(sum(costs), 6) if costs else None


@dataclass(frozen=True, slots=True)
class Submission:
    """An accepted task: poll it with `status`/`wait` by `task_uuid`."""

    task_uuid: str
    number_results: int
    task: dict[str, Any] = field(repr=False)


class VideoOptions(TypedDict, total=False):
    """Options of a `videoInference` task (snake_case for the Runware camelCase fields)."""

    task_uuid: str
    model: str
    width: int
    height: int
    size: str | tuple[int, int]  #: "1280x720" or (1280, 720), instead of width/height
    resolution: str  #: "480p" | "720p", with an image input
    duration: int
    image: MediaSource  #: first frame: a URL, data URI, UUID, local path or bytes
    video: MediaSource  #: source video: a URL, data URI, UUID, local path or bytes
    output_format: str  #: MP4 | WEBM | MOV
    output_quality: int
    number_results: int
    seed: int
    include_cost: bool
    ttl: int
    webhook_url: str
    extra: Mapping[str, Any]  #: any other task fields, sent as given


_WIRE = {
    "width": "width",
    "height": "height",
    "resolution": "resolution",
    "duration": "duration",
    "output_quality": "outputQuality",
    "number_results": "numberResults",
    "seed": "seed",
    "include_cost": "includeCost",
    "ttl": "ttl",
    "webhook_url": "webhookURL",
}


def parse_size(size: str | tuple[int, int]) -> tuple[int, int]:
    """(width, height) of "1280x720" or (1280, 720); ValueError if malformed."""
    if isinstance(size, tuple):
        return int(size[0]), int(size[1])
    w, sep, h = size.lower().replace("×", "x").partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise ValueError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 1280x720)")
    return int(w), int(h)


def media_input(value: MediaSource, parameter: str) -> str:
    """A media field's value: URLs, data URIs and UUIDs pass through; a local file or bytes
    become a base64 data URI. FileNotFoundError for a path that is not a file."""
    if isinstance(value, bytes):
        return _data_uri(value, None)
    if isinstance(value, str):
        text = value.strip()
        if text.lower().startswith(_PASS_THROUGH) or _is_uuid(text):
            return text
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"{parameter}: no such file: {path}")
    return _data_uri(path.read_bytes(), mimetypes.guess_type(path.name)[0])


def _is_uuid(text: str) -> bool:
    try:
        return len(text) == 36 and bool(uuid.UUID(text))
    except ValueError:
        return False


def _data_uri(data: bytes, mime: str | None) -> str:
    if mime is None:
        mime = next((m for magic, m in _MAGIC if data.startswith(magic)), None)
    if mime is None and data[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None and data[4:8] == b"ftyp":
        mime = "video/mp4"
    return f"data:{mime or 'application/octet-stream'};base64,{b64encode(data).decode()}"


def build_task(prompt: str, **options: Unpack[VideoOptions]) -> dict[str, Any]:
    """The `videoInference` task for `prompt` (a fresh taskUUID unless one is given)."""
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": options.get("task_uuid") or str(uuid.uuid4()),
        "model": options.get("model", MODEL),
        "positivePrompt": prompt,
    }
    given: Mapping[str, object] = options
    if (size := options.get("size")) is not None:
        task["width"], task["height"] = parse_size(size)
    task.update({wire: given[k] for k, wire in _WIRE.items() if given.get(k) is not None})
    if (fmt := options.get("output_format")) is not None:
        task["outputFormat"] = fmt.upper()
    inputs: dict[str, Any] = {}
    if (image := options.get("image")) is not None:
        inputs["frameImages"] = [media_input(image, "image")]
    if (video := options.get("video")) is not None:
        inputs["video"] = media_input(video, "video")
    if inputs:
        task["inputs"] = inputs
    task.update(options.get("extra") or {})
    return task


def reply_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    raise ClientError(
        f"HTTP {response.status_code} from {response.request.url} (not a Runware reply).",
        code="invalidResponse" if response.is_success else f"http{response.status_code}",
        status_code=response.status_code,
    )


def check_reply(response: httpx.Response) -> dict[str, Any]:
    """The reply's body; raise its first request-level error (a failed *result* of a
    getResponse carries `status: "error"` and is not raised here)."""
    body = reply_body(response)
    for item in body.get("errors") or []:
        if item.get("status") != "error":
            raise ClientError.from_item(item, response.status_code)
    if not response.is_success:
        raise ClientError(
            f"HTTP {response.status_code} from {response.request.url}.",
            code=f"http{response.status_code}",
            status_code=response.status_code,
        )
    return body


def parse_submission(task: dict[str, Any], response: httpx.Response) -> Submission:
    check_reply(response)
    return Submission(task["taskUUID"], int(task.get("numberResults") or 1), task)


def parse_status(task_uuid: str, response: httpx.Response) -> TaskStatus:
    body = check_reply(response)
    items = [*(body.get("data") or []), *(body.get("errors") or [])]
    return TaskStatus(task_uuid, tuple(VideoItem.from_item(i) for i in items))


def parse_cancel(response: httpx.Response) -> str:
    [item] = check_reply(response).get("data") or [{}]
    return str(item.get("status", "canceled"))

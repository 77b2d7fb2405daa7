"""What the sync and async clients share: defaults, reply checks, and small helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from openimagine.client.types import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    ClientError,
    ServerUnreachable,
    Submission,
    TaskStatus,
    VideoItem,
)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


def finished(status: TaskStatus, raise_on_error: bool) -> TaskStatus:
    """`status`, or its first error raised when asked."""
    if raise_on_error and status.errors:
        raise status.errors[0]
    return status


def transient(err: ClientError) -> bool:
    """Whether a poll that failed this way is worth trying again."""
    return isinstance(err, ServerUnreachable) or err.status_code in _TRANSIENT_STATUS


def task_id(task: str | Submission) -> str:
    """A task's UUID."""
    return task.task_uuid if isinstance(task, Submission) else task


def video_url(item_or_url: VideoItem | str) -> str:
    """Where a result downloads from."""
    url = item_or_url if isinstance(item_or_url, str) else item_or_url.video_url
    if not url:
        raise ClientError("This result has no videoURL (it is not finished).", code="noVideoURL")
    return url


def target(path: str | os.PathLike[str], url: str) -> Path:
    """The file a download writes (into `path` when it is a directory)."""
    dest = Path(path)
    return dest / Path(httpx.URL(url).path).name if dest.is_dir() else dest


def unreachable(base_url: str, exc: httpx.TransportError) -> ServerUnreachable:
    """The error for a server that did not answer."""
    reason = str(exc) or type(exc).__name__
    return ServerUnreachable(
        f"Cannot reach the server at {base_url} ({reason}).", code="serverUnreachable"
    )


def headers(api_key: str | None) -> dict[str, str]:
    """The bearer header of a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


ProgressCallback = Callable[[TaskStatus], object]
DownloadCallback = Callable[[int, int | None], object]


class Base:
    """Where the server is, and the key."""

    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)


def length(response: httpx.Response) -> int | None:
    """The declared length of a response body."""
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None

"""`Client`: a synchronous client for an openimagine server."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from openimagine.client.common import (
    DEFAULT_TIMEOUT,
    Base,
    DownloadCallback,
    ProgressCallback,
    finished,
    headers,
    length,
    target,
    task_id,
    transient,
    unreachable,
    video_url,
)
from openimagine.client.types import (
    ClientError,
    Submission,
    TaskStatus,
    VideoItem,
    VideoOptions,
    WaitTimeout,
    build_task,
    check_reply,
    parse_cancel,
    parse_status,
    parse_submission,
)


class Client(Base):
    """A synchronous client.

    Args:
        base_url: The server, e.g. `http://127.0.0.1:8765` (the default).
        api_key: The API key; default: the `OPENIMAGINE_API_KEY` environment variable.
        timeout: Per-request HTTP timeout.
        transport: An httpx transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(
            headers=headers(self.api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    def health(self) -> dict[str, Any]:
        """The server's `GET /health`: version, model, weights (`randomWeights`), workers."""
        return check_reply(self._send("GET", "/health"))

    def submit(self, prompt: str, **options: Unpack[VideoOptions]) -> Submission:
        """Queue a video task; its UUID is `Submission.task_uuid`. Raises ClientError."""
        task = build_task(prompt, **options)
        return parse_submission(task, self._send("POST", "/v1", json=[task]))

    def status(self, task: str | Submission) -> TaskStatus:
        """Poll a task once (`getResponse`)."""
        tid = task_id(task)
        body = [{"taskType": "getResponse", "taskUUID": tid}]
        return parse_status(tid, self._send("POST", "/v1", json=body))

    def wait(
        self,
        task: str | Submission,
        *,
        timeout: float = 600.0,
        poll_interval: float = 0.5,
        on_progress: ProgressCallback | None = None,
        raise_on_error: bool = True,
    ) -> TaskStatus:
        """Poll until every result is finished; call `on_progress(status)` after each poll.

        Raises the first failed result's ClientError (e.g. `taskCancelled`) unless
        `raise_on_error` is False, and WaitTimeout after `timeout` seconds.
        """
        tid, deadline = task_id(task), time.monotonic() + timeout
        while True:
            try:
                status = self.status(tid)
            except ClientError as err:
                if not transient(err) or time.monotonic() >= deadline:
                    raise
            else:
                if on_progress is not None:
                    on_progress(status)
                if status.done:
                    return finished(status, raise_on_error)
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Task {tid} is not finished after {timeout:g} s.", code="timeout"
                )
            time.sleep(poll_interval)

    def cancel(self, task: str | Submission) -> str:
        """Cancel a task; returns its status (`canceled`, or `running` until it stops)."""
        return parse_cancel(self._send("POST", f"/v1/tasks/{task_id(task)}/cancel"))

    def download(
        self,
        item_or_url: VideoItem | str,
        path: str | os.PathLike[str],
        *,
        on_progress: DownloadCallback | None = None,
    ) -> Path:
        """Save a result's video to `path` (a file, or a directory to save into)."""
        url = video_url(item_or_url)
        dest = target(path, url)
        part = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    response.read()
                    check_reply(response)
                total, done = length(response), 0
                with part.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
        except httpx.TransportError as exc:
            part.unlink(missing_ok=True)
            raise unreachable(self.base_url, exc) from exc
        except BaseException:  # Ctrl-C or a server error: leave no partial file behind
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
        return dest

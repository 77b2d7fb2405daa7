"""A Python client for an openimagine server: `Client` (sync) and `AsyncClient` (async).

It speaks the Runware REST protocol (`POST /v1` task arrays) with httpx and imports nothing
from the server, so it works against any openimagine deployment::

    from openimagine import Client

    with Client(api_key="oi_...") as client:
        sub = client.submit("a lighthouse in a storm", size="848x480", duration=2)
        done = client.wait(sub.task_uuid, on_progress=lambda s: print(s.progress))
        client.download(done.videos[0], "storm.mp4")
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import anyio
import httpx

from openimagine.client_types import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    MODEL,
    ClientError,
    ServerUnreachable,
    Submission,
    TaskStatus,
    VideoItem,
    VideoOptions,
    WaitTimeout,
    build_task,
    check_reply,
    media_input,
    parse_cancel,
    parse_size,
    parse_status,
    parse_submission,
)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "MODEL",
    "AsyncClient",
    "Client",
    "ClientError",
    "ServerUnreachable",
    "Submission",
    "TaskStatus",
    "VideoItem",
    "VideoOptions",
    "WaitTimeout",
    "build_task",
    "media_input",
    "parse_size",
]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


def _finished(status: TaskStatus, raise_on_error: bool) -> TaskStatus:
    if raise_on_error and status.errors:
        raise status.errors[0]
    return status


def _transient(err: ClientError) -> bool:
    return isinstance(err, ServerUnreachable) or err.status_code in _TRANSIENT_STATUS


def _uuid(task: str | Submission) -> str:
    return task.task_uuid if isinstance(task, Submission) else task


def _url(item_or_url: VideoItem | str) -> str:
    url = item_or_url if isinstance(item_or_url, str) else item_or_url.video_url
    if not url:
        raise ClientError("This result has no videoURL (it is not finished).", code="noVideoURL")
    return url


def _target(path: str | os.PathLike[str], url: str) -> Path:
    dest = Path(path)
    return dest / Path(httpx.URL(url).path).name if dest.is_dir() else dest


def _unreachable(base_url: str, exc: httpx.TransportError) -> ServerUnreachable:
    reason = str(exc) or type(exc).__name__
    return ServerUnreachable(
        f"Cannot reach the server at {base_url} ({reason}).", code="serverUnreachable"
    )


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


ProgressCallback = Callable[[TaskStatus], object]
DownloadCallback = Callable[[int, int | None], object]


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)


class Client(_Base):
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
            headers=_headers(self.api_key), timeout=timeout, transport=transport
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
            raise _unreachable(self.base_url, exc) from exc

    def health(self) -> dict[str, Any]:
        """The server's `GET /health`: version, model, weights (`randomWeights`), workers."""
        return check_reply(self._send("GET", "/health"))

    def submit(self, prompt: str, **options: Unpack[VideoOptions]) -> Submission:
        """Queue a video task; its UUID is `Submission.task_uuid`. Raises ClientError."""
        task = build_task(prompt, **options)
        return parse_submission(task, self._send("POST", "/v1", json=[task]))

    def status(self, task: str | Submission) -> TaskStatus:
        """Poll a task once (`getResponse`)."""
        tid = _uuid(task)
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
        tid, deadline = _uuid(task), time.monotonic() + timeout
        while True:
            try:
                status = self.status(tid)
            except ClientError as err:
                if not _transient(err) or time.monotonic() >= deadline:
                    raise
            else:
                if on_progress is not None:
                    on_progress(status)
                if status.done:
                    return _finished(status, raise_on_error)
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Task {tid} is not finished after {timeout:g} s.", code="timeout"
                )
            time.sleep(poll_interval)

    def cancel(self, task: str | Submission) -> str:
        """Cancel a task; returns its status (`canceled`, or `running` until it stops)."""
        return parse_cancel(self._send("POST", f"/v1/tasks/{_uuid(task)}/cancel"))

    def download(
        self,
        item_or_url: VideoItem | str,
        path: str | os.PathLike[str],
        *,
        on_progress: DownloadCallback | None = None,
    ) -> Path:
        """Save a result's video to `path` (a file, or a directory to save into)."""
        url = _url(item_or_url)
        dest = _target(path, url)
        part = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    response.read()
                    check_reply(response)
                total, done = _length(response), 0
                with part.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
        except httpx.TransportError as exc:
            part.unlink(missing_ok=True)
            raise _unreachable(self.base_url, exc) from exc
        except BaseException:  # Ctrl-C or a server error: leave no partial file behind
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
        return dest


def _length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class AsyncClient(_Base):
    """The async twin of `Client` (same arguments and methods, awaited)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(
            headers=_headers(self.api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def health(self) -> dict[str, Any]:
        """See `Client.health`."""
        return check_reply(await self._send("GET", "/health"))

    async def submit(self, prompt: str, **options: Unpack[VideoOptions]) -> Submission:
        """See `Client.submit` (local files are read in a thread)."""
        task = await anyio.to_thread.run_sync(lambda: build_task(prompt, **options))
        return parse_submission(task, await self._send("POST", "/v1", json=[task]))

    async def status(self, task: str | Submission) -> TaskStatus:
        """See `Client.status`."""
        tid = _uuid(task)
        body = [{"taskType": "getResponse", "taskUUID": tid}]
        return parse_status(tid, await self._send("POST", "/v1", json=body))

    async def wait(
        self,
        task: str | Submission,
        *,
        timeout: float = 600.0,  # noqa: ASYNC109 - Client.wait's signature; it also bounds retries
        poll_interval: float = 0.5,
        on_progress: ProgressCallback | None = None,
        raise_on_error: bool = True,
    ) -> TaskStatus:
        """See `Client.wait`; `on_progress` may be a coroutine function."""
        tid, deadline = _uuid(task), time.monotonic() + timeout
        while True:
            try:
                status = await self.status(tid)
            except ClientError as err:
                if not _transient(err) or time.monotonic() >= deadline:
                    raise
            else:
                if on_progress is not None and inspect.isawaitable(res := on_progress(status)):
                    await res
                if status.done:
                    return _finished(status, raise_on_error)
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Task {tid} is not finished after {timeout:g} s.", code="timeout"
                )
            await anyio.sleep(poll_interval)

    async def cancel(self, task: str | Submission) -> str:
        """See `Client.cancel`."""
        return parse_cancel(await self._send("POST", f"/v1/tasks/{_uuid(task)}/cancel"))

    async def download(
        self,
        item_or_url: VideoItem | str,
        path: str | os.PathLike[str],
        *,
        on_progress: DownloadCallback | None = None,
    ) -> Path:
        """See `Client.download`."""
        url = _url(item_or_url)
        dest = _target(path, url)
        part = dest.with_name(f".{dest.name}.part")
        try:
            async with self._http.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    check_reply(response)
                total, done = _length(response), 0
                async with await anyio.open_file(part, "wb") as out:
                    async for chunk in response.aiter_bytes():
                        await out.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
        except httpx.TransportError as exc:
            await anyio.Path(part).unlink(missing_ok=True)
            raise _unreachable(self.base_url, exc) from exc
        except BaseException:
            part.unlink(missing_ok=True)  # sync: a cancelled task cannot await
            raise
        await anyio.Path(part).replace(dest)
        return dest

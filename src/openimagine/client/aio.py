"""`AsyncClient`: the async twin of `Client`."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import anyio
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


class AsyncClient(Base):
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
            headers=headers(self.api_key), timeout=timeout, transport=transport
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
            raise unreachable(self.base_url, exc) from exc

    async def health(self) -> dict[str, Any]:
        """See `Client.health`."""
        return check_reply(await self._send("GET", "/health"))

    async def submit(self, prompt: str, **options: Unpack[VideoOptions]) -> Submission:
        """See `Client.submit` (local files are read in a thread)."""
        task = await anyio.to_thread.run_sync(lambda: build_task(prompt, **options))
        return parse_submission(task, await self._send("POST", "/v1", json=[task]))

    async def status(self, task: str | Submission) -> TaskStatus:
        """See `Client.status`."""
        tid = task_id(task)
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
        tid, deadline = task_id(task), time.monotonic() + timeout
        while True:
            try:
                status = await self.status(tid)
            except ClientError as err:
                if not transient(err) or time.monotonic() >= deadline:
                    raise
            else:
                if on_progress is not None and inspect.isawaitable(res := on_progress(status)):
                    await res
                if status.done:
                    return finished(status, raise_on_error)
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Task {tid} is not finished after {timeout:g} s.", code="timeout"
                )
            await anyio.sleep(poll_interval)

    async def cancel(self, task: str | Submission) -> str:
        """See `Client.cancel`."""
        return parse_cancel(await self._send("POST", f"/v1/tasks/{task_id(task)}/cancel"))

    async def download(
        self,
        item_or_url: VideoItem | str,
        path: str | os.PathLike[str],
        *,
        on_progress: DownloadCallback | None = None,
    ) -> Path:
        """See `Client.download`."""
        url = video_url(item_or_url)
        dest = target(path, url)
        part = dest.with_name(f".{dest.name}.part")
        try:
            async with self._http.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    check_reply(response)
                total, done = length(response), 0
                async with await anyio.open_file(part, "wb") as out:
                    async for chunk in response.aiter_bytes():
                        await out.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
        except httpx.TransportError as exc:
            await anyio.Path(part).unlink(missing_ok=True)
            raise unreachable(self.base_url, exc) from exc
        except BaseException:
            part.unlink(missing_ok=True)  # sync: a cancelled task cannot await
            raise
        await anyio.Path(part).replace(dest)
        return dest

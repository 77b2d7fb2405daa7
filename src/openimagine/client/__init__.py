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

from openimagine.client.aio import AsyncClient
from openimagine.client.sync import Client
from openimagine.client.types import (
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
    media_input,
    parse_size,
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

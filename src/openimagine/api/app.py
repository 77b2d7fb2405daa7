"""`create_app`: the composition root of the API process (which never imports torch)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from fastapi import FastAPI

from openimagine.__about__ import __version__
from openimagine.api import docs, health, jobs, media, playground, runware, videos
from openimagine.api.tasks import TaskProcessor
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.models.card import ModelCard
from openimagine.outbox import OutboxSender
from openimagine.service import VideoService
from openimagine.store.base import TaskStore
from openimagine.sweeper import Sweeper


@dataclass(frozen=True, slots=True)
class AppDeps:
    """Everything the API needs, built by the CLI (or a test)."""

    store: TaskStore
    service: VideoService
    blobs: LocalBlobStore
    signer: UrlSigner
    card: ModelCard
    weights: str
    random_weights: bool
    max_body_bytes: int
    ws_idle_timeout_s: float
    sender: OutboxSender | None = None  # delivers webhooks from the outbox while serving
    sweeper: Sweeper | None = None  # deletes result files whose URLs have expired


def create_app(deps: AppDeps) -> FastAPI:
    """The FastAPI app for `deps`; closes the store on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if deps.sender is not None:
                tg.start_soon(deps.sender.run)
            if deps.sweeper is not None:
                tg.start_soon(deps.sweeper.run)
            yield
            tg.cancel_scope.cancel()
        await deps.store.close()

    app = FastAPI(
        title="openimagine",
        version=__version__,
        summary="Self-hosted xai:grok-imagine@video over the Runware videoInference protocol.",
        lifespan=lifespan,
    )
    app.state.store = deps.store
    app.state.processor = TaskProcessor(deps.service)
    app.state.blobs = deps.blobs
    app.state.signer = deps.signer
    app.state.card = deps.card
    app.state.weights = deps.weights
    app.state.random_weights = deps.random_weights
    app.state.max_body_bytes = deps.max_body_bytes
    app.state.ws_idle_timeout_s = deps.ws_idle_timeout_s
    app.include_router(runware.router)
    app.include_router(media.router)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(playground.router)
    app.include_router(videos.router)
    app.mount(playground.STATIC_PATH, playground.static_files(), name="static")
    app.add_exception_handler(jobs.Refused, jobs.refused_handler)
    docs.document(app)  # last: documents every route included above
    return app

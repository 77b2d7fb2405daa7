"""`create_app`: the FastAPI app over the services `composition.build_api` wires (the API
process never imports torch)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio
from fastapi import FastAPI

from openimagine.__about__ import __version__
from openimagine.api import docs, health, media, metrics, playground, runware, tasks, usage
from openimagine.api.deps import ApiDeps
from openimagine.api.openai import routes as openai_routes
from openimagine.api.xai import routes as xai_routes

Server = Callable[[], AbstractAsyncContextManager[object]]


def create_app(deps: ApiDeps, *, servers: Sequence[Server] = ()) -> FastAPI:
    """The FastAPI app for `deps`: runs its background loops while serving, closes after.

    `servers` (the xAI gRPC door) listen for the app's lifespan: each is started before the
    app serves, so one that cannot start stops the startup, and stopped before the store
    closes.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            for loop in deps.background:
                tg.start_soon(loop)
            async with AsyncExitStack() as running:
                for server in servers:
                    await running.enter_async_context(server())
                yield
            tg.cancel_scope.cancel()
        if deps.close is not None:
            await deps.close()

    app = FastAPI(
        title="openimagine",
        version=__version__,
        summary="Self-hosted xai:grok-imagine@video over the Runware videoInference protocol.",
        lifespan=lifespan,
    )
    app.state.deps = deps
    app.router.routes[0:0] = runware.routes  # perf: matched first; the hottest routes
    app.include_router(media.router)
    app.include_router(health.router)
    app.include_router(metrics.router)  # serves `app.state.metrics` (cli/serve.py sets it)
    app.include_router(tasks.router)
    app.include_router(usage.router)
    app.include_router(playground.router)
    app.include_router(openai_routes.router)
    app.include_router(xai_routes.router)
    app.mount(playground.STATIC_PATH, playground.static_files(), name="static")
    docs.document(app)  # last: documents every route included above
    return app

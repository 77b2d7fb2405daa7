"""The Runware wire over HTTP: `POST /v1` (REST) and `WS /v1` (WebSocket), and the route class
that answers other routes' errors in Runware's envelope.

perf: `POST /v1` and `WS /v1` are plain Starlette routes, not FastAPI `APIRoute`s: they read
their own bodies and need no dependency injection, and FastAPI's per-request machinery costs
about as much as the rest of a submit. Their OpenAPI entries are written in `docs`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi import Request, Response, WebSocket, WebSocketDisconnect
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route, WebSocketRoute

from openimagine.api.body import json_response, json_text, parse_json, read_body, too_large
from openimagine.api.deps import ApiDeps, api_deps, bearer_token
from openimagine.errors import AuthError, OpenImagineError
from openimagine.runware.errors import auth_error_item, envelope, http_status
from openimagine.runware.processor import Reply, parse_tasks

log = logging.getLogger(__name__)


def runware_error(err: OpenImagineError) -> Response:
    """A domain error as Runware's `{"errors": [item]}` with the protocol's status."""
    auth = isinstance(err, AuthError)
    return json_response(envelope(err, auth=auth), http_status(err))


class RunwareRoute(APIRoute):
    """Answers domain errors (its dependencies' included) in Runware's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenImagineError as err:
                return runware_error(err)

        return route


async def post_tasks(request: Request) -> Response:
    """Run a JSON array of Runware tasks. Authenticate with `Authorization: Bearer <key>` or a
    leading `{"taskType": "authentication", "apiKey": ...}` task."""
    deps = api_deps(request)
    try:
        tasks = parse_tasks(parse_json(await read_body(request, deps.server.max_body_bytes)))
        key = bearer_token(request.headers)
        first = tasks[0]
        if isinstance(first, dict) and first.get("taskType") == "authentication":
            key = key or first.get("apiKey")
            tasks = tasks[1:]
        owner = await deps.auth.owner(key)
    except OpenImagineError as err:
        return runware_error(err)
    reply = Reply()
    await deps.tasks.run(owner, tasks, reply)
    return json_response(reply.envelope(), reply.status)


class _Session:
    """One WebSocket connection's state."""

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.owner: str | None = None
        self.session_uuid: str | None = None
        self.seen = time.monotonic()  # when the last message came
        self.idle = False

    async def authenticate(self, task: dict[str, Any]) -> dict[str, Any]:
        self.owner = await self.deps.auth.owner(task.get("apiKey"))
        resumed = task.get("connectionSessionUUID")
        self.session_uuid = resumed if isinstance(resumed, str) and resumed else str(uuid.uuid4())
        return {"taskType": "authentication", "connectionSessionUUID": self.session_uuid}

    async def message(self, raw: str) -> Reply:
        reply = Reply()
        try:
            tasks = parse_tasks(parse_json(raw))
        except OpenImagineError as err:
            reply.add_error(err)
            return reply
        rest: list[Any] = []
        for task in tasks:
            if isinstance(task, dict) and task.get("taskType") == "authentication":
                try:
                    reply.data.append(await self.authenticate(task))
                except AuthError as err:
                    reply.errors.append(auth_error_item(err))
            else:
                rest.append(task)
        if not rest:
            return reply
        if self.owner is None:
            first = AuthError(
                'Authenticate first: send [{"taskType":"authentication","apiKey":...}].',
                code="missingApiKey",
                parameter="apiKey",
            )
            reply.errors.append(auth_error_item(first))
            return reply
        await self.deps.tasks.run(self.owner, rest, reply)
        return reply


async def websocket_tasks(websocket: WebSocket) -> None:
    """Runware WebSocket: authenticate first, then any task; replies are JSON objects."""
    deps: ApiDeps = websocket.app.state.deps
    await websocket.accept()
    session = _Session(deps)
    # perf: one watchdog a connection instead of a timeout around every message.
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_idle, session, deps.server.ws_idle_timeout_s, scope)
            await _serve(websocket, session)
            scope.cancel()
    if session.idle:
        await websocket.close(code=1000, reason="idle timeout")


async def _serve(websocket: WebSocket, session: _Session) -> None:
    limit = session.deps.server.max_body_bytes
    try:
        while True:
            raw = await websocket.receive_text()
            session.seen = time.monotonic()
            if len(raw) > limit:
                await websocket.send_text(json_text(envelope(too_large(limit, "message"))))
                continue
            reply = await session.message(raw)
            await websocket.send_text(json_text(reply.envelope()))
    except WebSocketDisconnect:
        return


async def _watch_idle(session: _Session, idle_s: float, scope: anyio.CancelScope) -> None:
    """End the connection once no message came for `idle_s`."""
    while True:
        left = session.seen + idle_s - time.monotonic()
        if left <= 0:
            session.idle = True
            scope.cancel()
            return
        await anyio.sleep(left)


routes: list[BaseRoute] = [
    Route("/v1", post_tasks, methods=["POST"]),
    WebSocketRoute("/v1", websocket_tasks),
]

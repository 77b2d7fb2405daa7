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
from typing import Any, TypeGuard

import anyio
from fastapi import Request, Response, WebSocket, WebSocketDisconnect
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route, WebSocketRoute

from openimagine.api.body import (
    LEAD_BYTES,
    LimitedBody,
    json_response,
    json_text,
    leading_object,
    load_json,
    read_body,
    too_large,
)
from openimagine.api.deps import ApiDeps, api_deps, bearer_token
from openimagine.errors import AuthError, OpenImagineError, QuotaExceeded
from openimagine.runware.errors import auth_error_item, envelope, http_status
from openimagine.runware.processor import Reply, parse_tasks

log = logging.getLogger(__name__)

# How often an open WebSocket's key is checked again (a dictionary look-up while
# `Authenticator` caches it, 4 s): a revoked key is refused within 5 s here as everywhere.
_RECHECK_S = 0.5
_POLICY_VIOLATION = 1008  # the WebSocket close code for a connection without a valid key


def runware_error(err: OpenImagineError) -> Response:
    """A domain error as Runware's `{"errors": [item]}` with the protocol's status (a quota's
    with `Retry-After`)."""
    auth = isinstance(err, AuthError)
    response = json_response(envelope(err, auth=auth), http_status(err))
    if isinstance(err, QuotaExceeded):
        response.headers["Retry-After"] = str(err.retry_after_s)
    return response


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
        owner, body = await _authenticated_body(request, deps)
        tasks = parse_tasks(await load_json(body))
    except OpenImagineError as err:
        return runware_error(err)
    if _is_authentication(tasks[0]):
        tasks = tasks[1:]
    reply = Reply()
    await deps.tasks.run(owner, tasks, reply)
    response = json_response(reply.envelope(), reply.status)
    if reply.retry_after_s is not None:
        response.headers["Retry-After"] = str(reply.retry_after_s)
    return response


async def _authenticated_body(request: Request, deps: ApiDeps) -> tuple[str, bytes]:
    """The caller's owner id, then the body: a bearer key is checked before the body is read,
    a key in the body before more of it is read than its leading task needs."""
    key = bearer_token(request.headers)
    if key is not None:
        owner = await deps.auth.owner(key)
        await deps.quotas.count_request(owner)  # before any of the body is read
        return owner, await read_body(request, deps.server.max_body_bytes)
    body = LimitedBody(request, deps.server.max_body_bytes)
    lead = leading_object(await body.head(LEAD_BYTES))
    owner = await deps.auth.owner(lead.get("apiKey") if _is_authentication(lead) else None)
    await deps.quotas.count_request(owner)
    return owner, await body.all()


def _is_authentication(task: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(task, dict) and task.get("taskType") == "authentication"


def _authenticate_first() -> AuthError:
    return AuthError(
        'Authenticate first: send [{"taskType":"authentication","apiKey":...}].',
        code="missingApiKey",
        parameter="apiKey",
    )


class _Session:
    """One WebSocket connection's state. Its first message must authenticate; its key is
    checked again on every message and every `_RECHECK_S` (`_watch`)."""

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.key: str | None = None
        self.owner: str | None = None
        self.session_uuid: str | None = None
        self.seen = time.monotonic()  # when the last message came
        self.busy = False  # a message is being answered
        self.idle = False
        self.closing = False  # close after the reply: no (or no longer a) valid key
        self.revoked: AuthError | None = None  # found between messages, not yet sent

    async def authenticate(self, task: dict[str, Any]) -> dict[str, Any]:
        self.owner = await self.deps.auth.owner(task.get("apiKey"))
        self.key = task["apiKey"]
        resumed = task.get("connectionSessionUUID")
        self.session_uuid = resumed if isinstance(resumed, str) and resumed else str(uuid.uuid4())
        return {"taskType": "authentication", "connectionSessionUUID": self.session_uuid}

    async def key_revoked(self) -> AuthError | None:
        """The error to close with when the session's key stopped being valid."""
        try:
            await self.deps.auth.owner(self.key)
        except AuthError as err:
            return AuthError("The API key is no longer valid.", code=err.code, parameter="apiKey")
        return None

    async def message(self, raw: str) -> Reply:
        reply = Reply()
        first = self.owner is None
        if first and not await self._open(raw, reply):
            self.closing = True
            return reply
        if not first and (revoked := await self.key_revoked()) is not None:
            reply.errors.append(auth_error_item(revoked))
            self.closing = True
            return reply
        try:
            await self.deps.quotas.count_request(self.owner or "")  # `_open` set the owner
            tasks = parse_tasks(await load_json(raw))
        except OpenImagineError as err:
            reply.add_error(err)
            return reply
        if first:
            tasks = tasks[1:]  # the authentication task `_open` answered
        rest: list[Any] = []
        for task in tasks:
            if _is_authentication(task):
                try:
                    reply.data.append(await self.authenticate(task))
                except AuthError as err:
                    reply.errors.append(auth_error_item(err))
            else:
                rest.append(task)
        if rest and self.owner is not None:
            await self.deps.tasks.run(self.owner, rest, reply)
        return reply

    async def _open(self, raw: str, reply: Reply) -> bool:
        """Authenticate with the first message's leading task, read before the rest of the
        message is parsed; False (with the error in `reply`) when it does not authenticate."""
        try:
            lead = leading_object(raw)
            if not _is_authentication(lead):
                raise _authenticate_first()
            reply.data.append(await self.authenticate(lead))
        except AuthError as err:
            reply.errors.append(auth_error_item(err))
            return False
        except OpenImagineError as err:
            reply.add_error(err)
            return False
        return True


async def websocket_tasks(websocket: WebSocket) -> None:
    """Runware WebSocket: the first message authenticates, then any task; replies are JSON
    objects. A connection is closed when it idles, fails to authenticate, or its key is
    revoked (after an error item)."""
    deps: ApiDeps = websocket.app.state.deps
    await websocket.accept()
    session = _Session(deps)
    # perf: one watchdog a connection instead of a timeout around every message.
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, session, scope)
            await _serve(websocket, session)
            scope.cancel()
    if session.idle:
        await websocket.close(code=1000, reason="idle timeout")
    elif session.closing:
        if session.revoked is not None:
            await websocket.send_text(json_text({"errors": [auth_error_item(session.revoked)]}))
        await websocket.close(code=_POLICY_VIOLATION, reason="no valid API key")


async def _serve(websocket: WebSocket, session: _Session) -> None:
    limit = session.deps.server.max_body_bytes
    try:
        while not session.closing:
            raw = await websocket.receive_text()
            session.seen = time.monotonic()
            session.busy = True
            if len(raw) > limit:
                reply = Reply()
                reply.add_error(too_large(limit, "message"))
                session.closing = session.owner is None
            else:
                reply = await session.message(raw)
            await websocket.send_text(json_text(reply.envelope()))
            session.busy = False
    except WebSocketDisconnect:
        return


async def _watch(session: _Session, scope: anyio.CancelScope) -> None:
    """End the connection once no message came for the idle timeout, or, between messages,
    once the session's key is no longer valid (then `websocket_tasks` says so)."""
    idle_s = session.deps.server.ws_idle_timeout_s
    while True:
        left = session.seen + idle_s - time.monotonic()
        if left <= 0:
            session.idle = True
            scope.cancel()
            return
        await anyio.sleep(min(left, _RECHECK_S))
        if session.key is None or session.busy:
            continue
        revoked = await session.key_revoked()
        if revoked is not None and not session.busy:  # a busy one checks with its message
            session.revoked, session.closing = revoked, True
            scope.cancel()
            return


routes: list[BaseRoute] = [
    Route("/v1", post_tasks, methods=["POST"]),
    WebSocketRoute("/v1", websocket_tasks),
]

"""Request bodies, read with a size limit and parsed as JSON with a bounded cost; JSON responses.

perf: orjson parses and renders; the standard library only handles what orjson refuses
(lone surrogates and the like), so answers are the same either way. Nesting is bounded
(`MAX_JSON_DEPTH`): no legal task comes near it, and deeper values would reach recursive code
(the standard library's parser, `repr`, pydantic) that fails on them.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi import Request, Response

from openimagine.errors import InvalidInput, PayloadTooLarge

MAX_JSON_DEPTH = 64  #: arrays and objects inside one another, the outermost included
LEAD_BYTES = 8192  #: how much of an unauthenticated body is read to find its key
_OFF_LOOP_BYTES = 1 << 20  # perf: larger bodies are parsed in a worker thread
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[][{}]', re.DOTALL)  # strings, brackets
_SPACE = re.compile(rb"[ \t\r\n]*")
_SPACE_TEXT = re.compile(r"[ \t\r\n]*")


def too_large(limit: int, what: str = "request body") -> PayloadTooLarge:
    """The error for a body over `limit` bytes."""
    return PayloadTooLarge(f"The {what} is larger than {limit} bytes.", parameter="body", max=limit)


def invalid_body(reason: str, **details: Any) -> InvalidInput:
    """The error for a body that is not what the route reads."""
    return InvalidInput(
        f"The request body {reason}.", code="invalidRequestBody", parameter="body", **details
    )


class LimitedBody:
    """A request body read at most `limit` bytes far, perhaps in two steps: a head that is
    enough to find a key, and the rest once the key is good."""

    def __init__(self, request: Request, limit: int) -> None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        self.limit = limit
        self._stream = request.stream()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False

    async def _read_one(self) -> None:
        try:
            chunk = await anext(self._stream)
        except StopAsyncIteration:
            self._done = True
            return
        self._size += len(chunk)
        if self._size > self.limit:
            raise too_large(self.limit)
        self._chunks.append(chunk)

    async def head(self, size: int) -> bytes:
        """At least the first `size` bytes (all of a shorter body)."""
        while not self._done and self._size < size:
            await self._read_one()
        return b"".join(self._chunks)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks, as they come (those already read first)."""
        while self._chunks or not self._done:
            if not self._chunks:
                await self._read_one()
                continue
            yield self._chunks.popleft()

    async def all(self) -> bytes:
        """The whole body."""
        while not self._done:
            await self._read_one()
        return b"".join(self._chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed `limit`."""
    return await LimitedBody(request, limit).all()


def too_deep() -> InvalidInput:
    """The error for JSON nested deeper than `MAX_JSON_DEPTH`."""
    return invalid_body(
        f"nests arrays and objects more than {MAX_JSON_DEPTH} deep", maxDepth=MAX_JSON_DEPTH
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, list | dict) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
    return False


def parse_json(body: bytes | str) -> Any:
    """The JSON value of a body; `InvalidInput` naming `body` when it is not JSON or nests
    deeper than `MAX_JSON_DEPTH`."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise too_deep() from None
        value = _stdlib_loads(body)  # perhaps valid JSON that orjson does not take
    # perf: a body with few brackets (any task array, however much base64 it carries) cannot
    # nest deeply, and is not walked.
    if _brackets(body) > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep()
    return value


def _brackets(body: bytes | str) -> int:
    if isinstance(body, bytes):
        return body.count(b"[") + body.count(b"{")
    return body.count("[") + body.count("{")


def _stdlib_loads(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:  # the standard library's parser recurses, and says so cleanly
        raise too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_body(f"is not valid JSON: {exc}") from None


async def load_json(body: bytes | str) -> Any:
    """`parse_json`, in a worker thread for a large body so that the event loop keeps
    answering other requests (e.g. `/health`) meanwhile."""
    if len(body) < _OFF_LOOP_BYTES:
        return parse_json(body)
    return await anyio.to_thread.run_sync(parse_json, body)


def leading_object(body: bytes | str) -> dict[str, Any] | None:
    """The first element of a JSON array, read from the first `LEAD_BYTES` of `body` alone:
    how an authentication task is found before the rest of a body is parsed (or read).

    Returns None when that element is not an object, or does not end within those bytes
    (then it is no authentication task). Raises `InvalidInput` naming `body` when the body is
    no JSON array, or when its start is malformed or nests deeper than `MAX_JSON_DEPTH`.
    """
    head = _head(body)
    if not head.startswith("["):
        raise invalid_body("must be a JSON array of task objects")
    first = head[1:].lstrip(" \t\r\n")
    if first[:1] not in ("{", "["):
        return None  # a scalar, or an empty array: no authentication task
    end = _value_end(first)
    if end is None or not first.startswith("{"):
        return None
    value = parse_json(first[:end])
    return value if isinstance(value, dict) else None


def _head(body: bytes | str) -> str:
    """The first `LEAD_BYTES` of `body` after any leading white space, as text."""
    if isinstance(body, bytes):
        space = _SPACE.match(body)
        start = space.end() if space else 0
        return body[start : start + LEAD_BYTES].decode("utf-8", "replace")
    text_space = _SPACE_TEXT.match(body)
    start = text_space.end() if text_space else 0
    return body[start : start + LEAD_BYTES]


def _value_end(text: str) -> int | None:
    """Where the array or object that `text` starts with ends; None when `text` ends first."""
    depth = 0
    for token in _TOKEN.finditer(text):
        mark = token.group()
        if mark[0] == '"':
            if token.end() == len(text):
                return None  # the string runs past the window, and so does the value
            continue
        if mark in "[{":
            depth += 1
            if depth >= MAX_JSON_DEPTH:  # the enclosing task array is one more level
                raise too_deep()
            continue
        depth -= 1
        if depth == 0:
            return token.end()
    return None


def json_bytes(body: Any) -> bytes:
    """`body` as JSON."""
    try:
        return orjson.dumps(body)
    except TypeError:  # e.g. a lone surrogate: escaped, as JSON allows
        return json.dumps(body, separators=(",", ":")).encode()


def json_text(body: Any) -> str:
    """`body` as JSON text (a WebSocket message)."""
    return json_bytes(body).decode()


def json_response(body: Any, status: int = 200) -> Response:
    """`body` as an `application/json` response."""
    return Response(json_bytes(body), status_code=status, media_type="application/json")

"""Request bodies, read with a size limit and parsed as JSON; JSON responses.

perf: orjson parses and renders; the standard library only handles what orjson refuses
(integers beyond 64 bits, lone surrogates), so answers are the same either way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import Request, Response

from openimagine.errors import InvalidInput, PayloadTooLarge


def too_large(limit: int, what: str = "request body") -> PayloadTooLarge:
    """The error for a body over `limit` bytes."""
    return PayloadTooLarge(f"The {what} is larger than {limit} bytes.", parameter="body", max=limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes | str) -> Any:
    """The JSON value of a body; `InvalidInput` naming `body` when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # perhaps valid JSON that orjson does not take: the standard library decides
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"The request body is not valid JSON: {exc}.",
            code="invalidRequestBody",
            parameter="body",
        ) from None


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

"""Errors in OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}`, and the
route class that reads form bodies as JSON and answers every error that way."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # FastAPI's is a subclass; body errors raise this

from openimagine.api.openai.forms import as_json
from openimagine.errors import ErrorKind, OpenImagineError, QuotaExceeded

log = logging.getLogger(__name__)

HTTP_STATUS = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.GONE: 410,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.TOO_MANY: 429,
    ErrorKind.INTERNAL: 500,
}
# The service's and the edge's own names for what OpenAI calls otherwise (the task id is the
# video id; a key or a body is no request parameter). Request fields need no mapping: this
# door validates them under their OpenAI names.
_PARAMS: dict[str, str | None] = {"taskUUID": "video_id", "apiKey": None, "body": None}
_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "json_invalid": "invalid_json",
}


def snake(code: str) -> str:
    """`unsupportedDimensions` → `unsupported_dimensions`, `conflictTaskUUID` → `…_task_uuid`."""
    code = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", code)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", code).lower()


def error_response(status: int, message: str, param: str | None, code: str | None) -> JSONResponse:
    """`{"error": {"message", "type", "param", "code"}}` with `status`."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def domain_error(err: OpenImagineError) -> JSONResponse:
    """A domain error in OpenAI's envelope, the code in snake case (a quota's with
    `Retry-After`)."""
    param = _PARAMS.get(err.parameter, err.parameter) if err.parameter else None
    response = error_response(HTTP_STATUS[err.kind], err.message, param, snake(err.code))
    if isinstance(err, QuotaExceeded):
        response.headers["Retry-After"] = str(err.retry_after_s)
    return response


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation error (of the body or a query parameter) as OpenAI's 400."""
    errors = exc.errors()
    first: Mapping[str, Any] = errors[0] if errors else {}
    loc = [part for part in first.get("loc", ())[1:] if isinstance(part, str)]
    param = loc[0] if loc else None
    kind = str(first.get("type", ""))
    detail = str(first.get("msg", "invalid request"))
    if kind == "missing" and param is None:
        message = "Missing request body: send JSON or multipart/form-data."
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: '{'.'.join(loc)}'."
    elif param is not None:
        message = f"Invalid value for '{param}': {detail}."
    else:
        message = f"Invalid request body: {detail}."
    return error_response(400, message, param, _VALIDATION_CODES.get(kind, "invalid_value"))


class OpenAIRoute(APIRoute):
    """Reads form bodies as JSON, and answers every error in OpenAI's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                if request.method == "POST":
                    request = await as_json(request)
                return await handler(request)
            except OpenImagineError as err:
                return domain_error(err)
            except RequestValidationError as exc:
                return validation_error(exc)
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), None, None)
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(500, "Internal server error.", None, "internal_server_error")

        return route

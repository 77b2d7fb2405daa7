"""OpenAPI documentation beside the routes: request bodies, examples, and the bearer scheme.

The Runware `POST /v1` route reads its body itself (a free-form task array), so its request
schema is declared here; every other route gets examples of its answers. They are merged into
the schema FastAPI builds from the routes (by path and method), so `/docs` shows all of it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from fastapi import FastAPI

from openimagine.api.health import RANDOM_WEIGHTS_NOTICE
from openimagine.runware.errors import DOCS_URL
from openimagine.runware.processor import MAX_TASKS_PER_MESSAGE, TASK_TYPES

BEARER = "bearerAuth"
_TASK = "6fab44b7-2911-4ba7-b2c1-9fbc06847acb"
_VIDEO = "c8b6b301-7a5e-4aa8-a3e5-0f4377da76ea"
_URL = f"http://127.0.0.1:8765/media/results/{_VIDEO}.mp4?exp=1767225600&sig=Zm9v"
_SECURED: list[dict[str, list[str]]] = [{BEARER: []}]

_VIDEO_TASK = {
    "taskType": "videoInference",
    "taskUUID": _TASK,
    "model": "xai:grok-imagine@video",
    "positivePrompt": "a lighthouse in a storm",
    "width": 480,
    "height": 480,
    "duration": 1,
    "includeCost": True,
}


def _json(*examples: tuple[str, str, Any]) -> dict[str, Any]:
    """A JSON media type with named examples `(name, summary, value)`."""
    return {
        "application/json": {
            "schema": {"type": "object"},
            "examples": {
                name: {"summary": summary, "value": value} for name, summary, value in examples
            },
        }
    }


def _errors(code: str, message: str, parameter: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        item["parameter"] = parameter
        item["documentation"] = f"{DOCS_URL}#request-{parameter.lower()}"
    return {"errors": [item]}


def _error_response(
    description: str, code: str, message: str, parameter: str | None = None
) -> dict[str, Any]:
    return {
        "description": description,
        "content": _json((code, message, _errors(code, message, parameter))),
    }


_UNAUTHORIZED = _error_response("No valid API key", "invalidApiKey", "Invalid API key.", "apiKey")
_NOT_FOUND = _error_response(
    "No such task for this key", "taskNotFound", f"No task found with taskUUID {_TASK}.", "taskUUID"
)

_TASKS_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "A JSON array of Runware task objects, processed in order; a failing task never stops "
        "the others. Task fields are those of the Runware protocol and the model page "
        f"({DOCS_URL}). The same tasks run over the WebSocket at `WS /v1`."
    ),
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_TASKS_PER_MESSAGE,
                "items": {
                    "type": "object",
                    "required": ["taskType"],
                    "properties": {
                        "taskType": {"type": "string", "enum": list(TASK_TYPES)},
                        "taskUUID": {"type": "string", "format": "uuid"},
                    },
                    "additionalProperties": True,
                },
            },
            "examples": {
                "videoInference": {
                    "summary": "Text to video: 480×480, 1 s, with its cost",
                    "value": [_VIDEO_TASK],
                },
                "getResponse": {
                    "summary": "Poll a task's results",
                    "value": [{"taskType": "getResponse", "taskUUID": _TASK}],
                },
                "ping": {
                    "summary": "Authenticate in the body, then ping",
                    "value": [
                        {"taskType": "authentication", "apiKey": "oi_..."},
                        {"taskType": "ping", "ping": True},
                    ],
                },
            },
        }
    },
}

_EXTRAS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1"): {
        # A plain Starlette route (see api/runware.py): FastAPI does not generate it.
        "summary": "Runware task array (REST)",
        "description": (
            "Run a JSON array of Runware tasks. Authenticate with `Authorization: Bearer <key>` "
            'or a leading `{"taskType": "authentication", "apiKey": ...}` task.'
        ),
        "operationId": "post_tasks_v1_post",
        "tags": ["runware"],
        "requestBody": _TASKS_BODY,
        "security": _SECURED,
        "responses": {
            "200": {
                "description": "One `data` item per task (and `errors` for the tasks that failed)",
                "content": _json(
                    (
                        "acknowledged",
                        "videoInference accepted (async)",
                        {"data": [{"taskType": "videoInference", "taskUUID": _TASK}]},
                    ),
                    (
                        "processing",
                        "getResponse while generating",
                        {
                            "data": [
                                {
                                    "taskType": "videoInference",
                                    "taskUUID": _TASK,
                                    "videoUUID": _VIDEO,
                                    "status": "processing",
                                    "progress": 40,
                                }
                            ]
                        },
                    ),
                    (
                        "success",
                        "getResponse when done",
                        {
                            "data": [
                                {
                                    "taskType": "videoInference",
                                    "taskUUID": _TASK,
                                    "videoUUID": _VIDEO,
                                    "status": "success",
                                    "progress": 100,
                                    "videoURL": _URL,
                                    "seed": 42,
                                    "cost": 0.05,
                                }
                            ]
                        },
                    ),
                ),
            },
            "400": _error_response(
                "The task array or a task is invalid",
                "unsupportedDimensions",
                "Unsupported dimensions 500x500. Supported: 480x480, 848x480, ….",
                "width",
            ),
            "401": _UNAUTHORIZED,
            "409": _error_response(
                "The taskUUID was used for a different request",
                "conflictTaskUUID",
                f"taskUUID {_TASK} was already used for a different request.",
                "taskUUID",
            ),
            "413": _error_response(
                "The body is over the server's limit",
                "payloadTooLarge",
                "The request body is larger than 67108864 bytes.",
                "body",
            ),
        },
    },
    ("GET", "/media/{key}"): {
        "responses": {
            "200": {
                "description": "The file (Range requests are supported)",
                "content": {
                    "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                    "video/webm": {"schema": {"type": "string", "format": "binary"}},
                    "video/quicktime": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "403": _error_response(
                "Tampered or unsigned URL", "invalidSignature", "Invalid signature."
            ),
            "404": _error_response("No such file", "mediaNotFound", "Not found."),
            "410": _error_response("Expired URL", "urlExpired", "This URL has expired."),
        }
    },
    ("GET", "/health"): {
        "responses": {
            "200": {
                "description": "The API process is up",
                "content": _json(
                    (
                        "tiny",
                        "The offline tiny model (random weights) with one ready worker",
                        {
                            "status": "ok",
                            "version": "0.1.0",
                            "model": "xai:grok-imagine@video",
                            "weights": "tiny-ltx2-v1",
                            "randomWeights": True,
                            "workers": [
                                {
                                    "id": "host:4242",
                                    "state": "ready",
                                    "weights": "tiny-ltx2-v1",
                                    "randomWeights": True,
                                }
                            ],
                            "notice": RANDOM_WEIGHTS_NOTICE,
                        },
                    )
                ),
            }
        }
    },
    ("GET", "/ready"): {
        "responses": {
            "200": {
                "description": "At least one worker has its model loaded",
                "content": _json(("ready", "One ready worker", {"ready": True, "workers": 1})),
            },
            "503": {
                "description": "No worker is ready yet",
                "content": _json(
                    ("starting", "Workers still loading", {"ready": False, "workers": 0})
                ),
            },
        }
    },
    ("GET", "/v1/models"): {
        "responses": {
            "200": {
                "description": "The model card as data",
                "content": _json(
                    (
                        "grok",
                        "xai:grok-imagine@video (sizes shortened)",
                        {
                            "data": [
                                {
                                    "id": "xai:grok-imagine@video",
                                    "name": "Grok Imagine Video",
                                    "capabilities": ["textToVideo", "imageToVideo", "videoToVideo"],
                                    "sizes": [
                                        {
                                            "width": 480,
                                            "height": 480,
                                            "tier": "480p",
                                            "aspectRatio": "1:1",
                                        },
                                        {
                                            "width": 1280,
                                            "height": 720,
                                            "tier": "720p",
                                            "aspectRatio": "16:9",
                                        },
                                    ],
                                    "resolutions": ["480p", "720p"],
                                    "duration": {"min": 1, "max": 15, "default": 6},
                                    "fps": 24,
                                    "outputFormats": ["MP4", "WEBM", "MOV"],
                                    "pricing": {
                                        "perSecond": {"480p": 0.05, "720p": 0.07},
                                        "imageInput": 0.002,
                                        "videoInputPerSecond": 0.01,
                                    },
                                    "weights": "tiny-ltx2-v1",
                                    "randomWeights": True,
                                }
                            ]
                        },
                    )
                ),
            }
        }
    },
    ("POST", "/v1/tasks/{task_uuid}/cancel"): {
        "security": _SECURED,
        "responses": {
            "200": {
                "description": "Cancellation requested",
                "content": _json(
                    (
                        "canceled",
                        "A queued task",
                        {"data": [{"taskUUID": _TASK, "status": "canceled"}]},
                    )
                ),
            },
            "401": _UNAUTHORIZED,
            "404": _NOT_FOUND,
        },
    },
    ("GET", "/v1/tasks/{task_uuid}/deliveries"): {
        "security": _SECURED,
        "responses": {
            "200": {
                "description": "The task's webhook and upload deliveries",
                "content": _json(
                    (
                        "delivered",
                        "One webhook POST, delivered",
                        {
                            "data": [
                                {
                                    "id": "0b7e8f8e-3f0c-4f8e-9a55-3f8f6f0c2a11",
                                    "kind": "webhook",
                                    "event": "result_ready",
                                    "url": "https://example.com/hook",
                                    "status": "delivered",
                                    "attempts": 1,
                                    "lastError": None,
                                    "nextAttemptAt": None,
                                    "deliveredAt": 1767225600.0,
                                }
                            ]
                        },
                    )
                ),
            },
            "401": _UNAUTHORIZED,
            "404": _NOT_FOUND,
        },
    },
    ("GET", "/"): {
        "responses": {
            "200": {
                "description": "The playground page",
                "content": {
                    "text/html": {
                        "schema": {"type": "string"},
                        "example": '<!doctype html><html lang="en">…</html>',
                    }
                },
            }
        }
    },
}


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Deep-merge `extra` into `into`; a response's `content` is replaced whole, since the
    generated one is a placeholder (an empty JSON schema for a route returning a Response)."""
    for key, value in extra.items():
        if key != "content" and isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _documented_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema (built once), with `_EXTRAS` merged in and the bearer scheme."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # builds and caches app.openapi_schema: edited in place
    for (method, path), extra in _EXTRAS.items():
        paths = schema.setdefault("paths", {})
        if method == "POST" and path == "/v1":  # not generated: a plain Starlette route
            paths.setdefault(path, {}).setdefault("post", {})
        operation = paths.get(path, {}).get(method.lower())
        if operation is not None:
            _merge(operation, copy.deepcopy(extra))
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`openimagine keys create`): `Authorization: Bearer <key>`.",
    }
    return schema


def document(app: FastAPI) -> None:
    """Make `app`'s OpenAPI schema carry the request bodies, examples and security above."""
    app.openapi = functools.partial(_documented_openapi, app)  # type: ignore[method-assign]

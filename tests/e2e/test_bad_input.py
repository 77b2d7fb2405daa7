"""Bad input over REST against a real server: every refusal is a Runware error item with the
right HTTP status, nothing is stored, and the server keeps serving.

Only the taskUUID-conflict test queues a generation (a conflict needs a stored task).
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from openimagine.config import Settings
from tests.helpers import Server, t2v

DROP: Any = object()  # marks a field to remove from the base task


def task_with(**changes: Any) -> dict[str, Any]:
    """A valid tiny text-to-video task with `changes` applied (DROP removes a field)."""
    task = t2v()
    for key, value in changes.items():
        if value is DROP:
            task.pop(key, None)
        else:
            task[key] = value
    return task


def post_raw(server: Server, body: bytes | Iterator[bytes]) -> httpx.Response:
    """POST a body as bytes (not JSON-encoded by the client)."""
    return httpx.post(
        server.base + "/v1",
        content=body,
        headers={
            "Authorization": f"Bearer {server.key}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )


def only_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single error item of an errors-only envelope with this HTTP status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    [item] = body["errors"]
    assert isinstance(item["code"], str) and item["code"]
    assert isinstance(item["message"], str) and item["message"]
    return item


def assert_still_serving(server: Server) -> None:
    """A ping still gets its pong: the bad request did not take the server down."""
    r = server.post([{"taskType": "ping", "ping": True}])
    assert r.status_code == 200
    assert r.json() == {"data": [{"taskType": "ping", "pong": True}]}


def assert_unknown(server: Server, task_uuid: str) -> None:
    """getResponse knows nothing of the task: a refused task is never stored."""
    item = only_error(server.post([{"taskType": "getResponse", "taskUUID": task_uuid}]), 404)
    assert item["code"] == "taskNotFound" and item["taskUUID"] == task_uuid


# -- bodies that are not a task array ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'[{"taskType": "videoInference"', b"not json", b"", b"\xff\xfe[]", b"[1,]"],
    ids=["truncated", "text", "empty", "not-utf8", "trailing-comma"],
)
def test_malformed_json_is_refused(server: Server, body: bytes):
    item = only_error(post_raw(server, body), 400)
    assert item["code"] == "invalidRequestBody" and item["parameter"] == "body"
    assert_still_serving(server)


@pytest.mark.parametrize(
    "body",
    [{"taskType": "ping"}, "videoInference", 42, None, []],
    ids=["object", "string", "number", "null", "empty-array"],
)
def test_a_body_that_is_not_a_task_array_is_refused(server: Server, body: Any):
    item = only_error(post_raw(server, json.dumps(body).encode()), 400)
    assert item["code"] == "invalidRequestBody" and item["parameter"] == "body"
    assert_still_serving(server)


def test_a_single_task_object_instead_of_an_array_is_not_stored(server: Server):
    task = t2v()
    item = only_error(post_raw(server, json.dumps(task).encode()), 400)
    assert item["code"] == "invalidRequestBody"
    assert_unknown(server, task["taskUUID"])


def test_a_task_that_is_not_an_object_is_refused(server: Server):
    item = only_error(server.post(["videoInference"]), 400)  # type: ignore[list-item]
    assert item["code"] == "invalidTask" and item["parameter"] == "taskType"
    assert_still_serving(server)


def test_an_unknown_task_type_is_refused(server: Server):
    task = task_with(taskType="imageInference")
    item = only_error(server.post([task]), 400)
    assert item["code"] == "unsupportedTaskType" and item["parameter"] == "taskType"
    assert item["taskType"] == "imageInference" and item["taskUUID"] == task["taskUUID"]
    assert "videoInference" in item["allowedValues"]
    assert_unknown(server, task["taskUUID"])
    assert_still_serving(server)


# -- videoInference tasks that fail validation ---------------------------------------------------

REFUSED = [
    # missing fields
    pytest.param({"taskType": DROP}, "missingTaskType", "taskType", id="missing-taskType"),
    pytest.param({"model": DROP}, "missingModel", "model", id="missing-model"),
    pytest.param(
        {"positivePrompt": DROP}, "missingPositivePrompt", "positivePrompt", id="missing-prompt"
    ),
    pytest.param({"width": DROP, "height": DROP}, "missingWidth", "width", id="missing-size"),
    pytest.param({"height": DROP}, "missingHeight", "height", id="missing-height"),
    # wrong types
    pytest.param({"width": "480"}, "invalidWidth", "width", id="width-string"),
    pytest.param({"duration": "6"}, "invalidDuration", "duration", id="duration-string"),
    pytest.param({"includeCost": "yes"}, "invalidIncludeCost", "includeCost", id="cost-string"),
    pytest.param(
        {"numberResults": 1.5}, "invalidNumberResults", "numberResults", id="numberResults-float"
    ),
    pytest.param({"inputs": ["x"]}, "invalidInputs", "inputs", id="inputs-array"),
    pytest.param({"safety": "full"}, "invalidSafety", "safety", id="safety-string"),
    pytest.param(
        {"positivePrompt": 7}, "invalidPositivePrompt", "positivePrompt", id="prompt-number"
    ),
    # out of range or not allowed
    pytest.param(
        {"width": 1000, "height": 1000}, "unsupportedDimensions", "width", id="size-1000x1000"
    ),
    pytest.param({"duration": 16}, "invalidDuration", "duration", id="duration-16"),
    pytest.param({"numberResults": 5}, "invalidNumberResults", "numberResults", id="results-5"),
    pytest.param({"outputQuality": 100}, "invalidOutputQuality", "outputQuality", id="quality-100"),
    pytest.param({"ttl": 59}, "invalidTtl", "ttl", id="ttl-59"),
    pytest.param({"seed": -1}, "invalidSeed", "seed", id="seed-negative"),
    pytest.param({"outputFormat": "GIF"}, "invalidOutputFormat", "outputFormat", id="format-gif"),
    pytest.param({"outputType": "base64Data"}, "invalidOutputType", "outputType", id="type-base64"),
    pytest.param({"deliveryMethod": "sync"}, "invalidDeliveryMethod", "deliveryMethod", id="sync"),
    pytest.param(
        {"webhookURL": "ftp://example.com/h"}, "invalidWebhookURL", "webhookURL", id="webhook-ftp"
    ),
    pytest.param(
        {"positivePrompt": "  "}, "invalidPositivePrompt", "positivePrompt", id="prompt-blank"
    ),
    pytest.param({"model": "xai:grok-imagine@image"}, "modelNotFound", "model", id="other-model"),
    # rules between fields, and parameters this model does not take
    pytest.param(
        {"resolution": "720p"}, "incompatibleParameters", "resolution", id="resolution+size"
    ),
    pytest.param(
        {"inputs": {"video": "https://example.com/a.mp4"}},
        "incompatibleParameters",
        "width",
        id="video+size",
    ),
    pytest.param(
        {"negativePrompt": "blur"}, "unsupportedParameter", "negativePrompt", id="negativePrompt"
    ),
    pytest.param(
        {"width": None, "height": None},
        "missingWidth",
        "width",
        id="null-size",
    ),
]


@pytest.mark.parametrize(("changes", "code", "parameter"), REFUSED)
def test_an_invalid_video_task_is_refused_and_not_stored(
    server: Server, changes: dict[str, Any], code: str, parameter: str
):
    task = task_with(**changes)
    item = only_error(server.post([task]), 400)
    assert (item["code"], item["parameter"]) == (code, parameter)
    # The item is routed back to its task: it echoes taskUUID and (when sent) taskType.
    assert item["taskUUID"] == task["taskUUID"]
    assert item.get("taskType") == task.get("taskType")
    assert_unknown(server, task["taskUUID"])
    assert_still_serving(server)


@pytest.mark.parametrize(
    ("task_uuid", "code"),
    [(DROP, "missingTaskUUID"), (12345, "invalidTaskUUID"), ("not-a-uuid", "invalidTaskUUID")],
    ids=["missing", "number", "not-a-uuid"],
)
def test_a_bad_task_uuid_is_refused(server: Server, task_uuid: Any, code: str):
    task = task_with(taskUUID=task_uuid)
    item = only_error(server.post([task]), 400)
    assert (item["code"], item["parameter"]) == (code, "taskUUID")
    assert item["taskType"] == "videoInference"
    # Only a string can be echoed back.
    assert item.get("taskUUID") == (task_uuid if isinstance(task_uuid, str) else None)
    assert_still_serving(server)


def test_a_bad_task_does_not_stop_the_others_in_the_same_request(server: Server):
    bad = task_with(duration=0)
    r = server.post([bad, {"taskType": "ping", "ping": True}])
    body = r.json()
    assert body["data"] == [{"taskType": "ping", "pong": True}]
    [item] = body["errors"]
    assert item["code"] == "invalidDuration" and item["taskUUID"] == bad["taskUUID"]
    assert_unknown(server, bad["taskUUID"])


# -- reused taskUUID -------------------------------------------------------------------------


def test_a_reused_task_uuid_with_a_different_request_is_a_conflict(server: Server):
    task = t2v()
    assert server.post([task]).status_code == 200
    other = {**task, "positivePrompt": "something else", "numberResults": 2}
    item = only_error(server.post([other]), 409)
    assert (item["code"], item["parameter"]) == ("conflictTaskUUID", "taskUUID")
    assert item["taskType"] == "videoInference" and item["taskUUID"] == task["taskUUID"]
    # The first request stands: one result, not the conflicting request's two. (No need to
    # wait for it: results are allocated at submit.)
    body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()
    [result] = body["data"]
    assert result["taskUUID"] == task["taskUUID"]
    assert result["status"] in ("processing", "success")
    assert_still_serving(server)


# -- oversized bodies ------------------------------------------------------------------------


def body_limit() -> int:
    """The server's body limit: the default, or what the environment (which the server
    subprocess inherits) sets."""
    return Settings().server.max_body_bytes


def test_a_body_declared_too_large_is_refused_before_it_is_read(server: Server):
    limit = body_limit()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        # Headers only: the refusal must not wait for a body that never comes.
        conn.putrequest("POST", "/v1")
        conn.putheader("Authorization", f"Bearer {server.key}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(limit + 1))
        conn.endheaders()
        response = conn.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        conn.close()
    assert status == 413
    [item] = body["errors"]
    assert (item["code"], item["parameter"], item["max"]) == ("payloadTooLarge", "body", limit)
    assert item["message"]
    assert_still_serving(server)


def test_a_streamed_body_over_the_limit_is_refused(server: Server):
    limit = body_limit()
    chunk = b" " * (1 << 20)

    def stream() -> Iterator[bytes]:
        # Chunked, so no Content-Length: the server has to count as it reads.
        sent = 0
        while sent <= limit:
            piece = chunk[: limit + 1 - sent]
            sent += len(piece)
            yield piece

    item = only_error(post_raw(server, stream()), 413)
    assert (item["code"], item["parameter"]) == ("payloadTooLarge", "body")
    assert_still_serving(server)


# -- authentication --------------------------------------------------------------------------


def test_a_bad_api_key_is_refused_and_nothing_is_stored(server: Server):
    task = t2v()
    item = only_error(server.post([task], key="oi_not_a_key"), 401)
    assert (item["code"], item["parameter"]) == ("invalidApiKey", "apiKey")
    # Auth errors are routed by taskType "authentication" and carry no taskUUID (the JS SDK
    # routes on `taskUUID || taskType`).
    assert item["taskType"] == "authentication" and "taskUUID" not in item
    assert_unknown(server, task["taskUUID"])
    assert_still_serving(server)


@pytest.mark.parametrize(
    ("headers", "tasks", "code"),
    [
        ({}, [], "missingApiKey"),
        ({"Authorization": "Bearer"}, [], "missingApiKey"),
        ({"Authorization": "Basic b2k6b2k="}, [], "missingApiKey"),
        ({}, [{"taskType": "authentication", "apiKey": "oi_not_a_key"}], "invalidApiKey"),
    ],
    ids=["no-header", "empty-bearer", "basic-auth", "bad-auth-task"],
)
def test_requests_without_a_valid_key_are_refused(
    server: Server, headers: dict[str, str], tasks: list[dict[str, Any]], code: str
):
    task = t2v()
    r = httpx.post(server.base + "/v1", json=[*tasks, task], headers=headers, timeout=10)
    item = only_error(r, 401)
    assert (item["code"], item["taskType"]) == (code, "authentication")
    assert_unknown(server, task["taskUUID"])


def test_an_unknown_task_uuid_is_reported_unknown(server: Server):
    # The baseline for every "nothing is stored" check above.
    assert_unknown(server, str(uuid.uuid4()))

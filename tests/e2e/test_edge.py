"""The edge of a shared server, on a real `openimagine serve` (no workers) on 127.0.0.1: the
key is checked before a body is parsed, every parse is bounded, `/health` keeps answering
meanwhile, and a revoked key stops working within 5 s, on an open WebSocket too."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from openimagine.composition import add_key, revoke_key
from openimagine.config import Settings
from tests.helpers import Server

BODY_LIMIT = 10 * 1024 * 1024
UPLOAD = os.urandom(8 * 1024 * 1024)  # 8 MB: about 20 s of the standard library's MIME parser
PING = [{"taskType": "ping", "ping": True}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without workers (nothing here generates) and a 10 MiB body limit."""
    root = tmp_path_factory.mktemp("edge")
    env = {"OPENIMAGINE_SERVER__MAX_BODY_BYTES": str(BODY_LIMIT)}
    srv = Server(root / "data", checkpoint=root / "no-weights", workers=0, env=env).start()
    yield srv
    srv.stop()


def new_key(server: Server) -> str:
    key = "oi_edge_" + uuid.uuid4().hex
    anyio.run(add_key, Settings(data_dir=server.data_dir), key, "edge test")
    return key


def ws_connect(server: Server) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/v1", open_timeout=10, max_size=None)


def ws_call(ws: ClientConnection, message: Any, timeout: float = 10) -> dict[str, Any]:
    ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(ws.recv(timeout=timeout))


def assert_closed(ws: ClientConnection, code: int) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    return error


# -- bodies without a key ----------------------------------------------------------------------


def test_unauthenticated_uploads_are_refused_at_once_while_health_answers(server: Server):
    results: list[tuple[int, float]] = []

    def upload() -> None:
        for _ in range(2):
            started = time.monotonic()
            r = httpx.post(
                f"{server.base}/v1/videos",
                data={"prompt": "a lighthouse"},
                files={"input_reference": ("frame.png", UPLOAD, "image/png")},
                timeout=60,
            )
            results.append((r.status_code, time.monotonic() - started))

    uploads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in uploads:
        thread.start()
    latencies = []
    with httpx.Client(timeout=5) as client:
        while any(thread.is_alive() for thread in uploads) or len(latencies) < 10:
            started = time.monotonic()
            assert client.get(f"{server.base}/health").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    for thread in uploads:
        thread.join()
    assert [status for status, _ in results] == [401] * 8
    assert max(seconds for _, seconds in results) < 5
    assert max(latencies) < 0.5, latencies


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "key"])
def test_deeply_nested_json_is_a_400_not_a_500(server: Server, keyed: bool):
    headers = {"Authorization": f"Bearer {server.key}"} if keyed else {}
    r = httpx.post(f"{server.base}/v1", content=b"[" * 100_000, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    [item] = r.json()["errors"]
    assert (item["code"], item["parameter"], item["maxDepth"]) == ("invalidRequestBody", "body", 64)


def test_nesting_past_the_bound_is_refused_even_where_the_parser_copes(server: Server):
    deep: Any = 1
    for _ in range(70):  # far below any parser's own limit, far above any legal task
        deep = [deep]
    r = server.post([{"taskType": "ping", "ping": True, "extra": deep}])
    [item] = r.json()["errors"]
    assert r.status_code == 400 and item["code"] == "invalidRequestBody"
    ok = server.post([{"taskType": "ping", "ping": True}])
    assert ok.json() == {"data": [{"taskType": "ping", "pong": True}]}


def test_an_authentication_task_still_authenticates_a_body_without_a_header(server: Server):
    body = [{"taskType": "authentication", "apiKey": server.key}, *PING]
    r = httpx.post(f"{server.base}/v1", json=body, timeout=10)
    assert r.json() == {"data": [{"taskType": "ping", "pong": True}]}


# -- /v1/videos form bodies, with a key --------------------------------------------------------


def test_a_form_with_too_many_parts_is_refused(server: Server):
    auth = {"Authorization": f"Bearer {server.key}"}
    fields = {"prompt": "a lighthouse", **{f"f{i}": "x" for i in range(40)}}
    multipart = httpx.post(
        f"{server.base}/v1/videos",
        data=fields,
        files={"input_reference": ("frame.png", b"png", "image/png")},
        headers=auth,
        timeout=30,
    )
    error = openai_error(multipart, 400)
    assert (error["code"], error["param"]) == ("too_many_form_parts", None)
    urlencoded = httpx.post(f"{server.base}/v1/videos", data=fields, headers=auth, timeout=30)
    assert openai_error(urlencoded, 400)["code"] == "too_many_form_parts"


def test_an_oversized_form_field_is_refused(server: Server):
    r = httpx.post(
        f"{server.base}/v1/videos",
        data={"prompt": "a" * (2 * 1024 * 1024)},
        files={"input_reference": ("frame.png", b"png", "image/png")},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    error = openai_error(r, 413)
    assert (error["code"], error["param"]) == ("payload_too_large", "prompt")


def test_deeply_nested_json_is_a_clear_400_on_v1_videos(server: Server):
    r = httpx.post(
        f"{server.base}/v1/videos",
        content=b'{"prompt": ' + b"[" * 100_000,
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert openai_error(r, 400)["code"] == "invalid_request_body"


# -- the WebSocket -----------------------------------------------------------------------------


def test_a_websocket_whose_first_message_does_not_authenticate_is_closed(server: Server):
    with ws_connect(server) as ws:
        reply = ws_call(ws, PING)
        [item] = reply["errors"]
        assert (item["code"], item["taskType"]) == ("missingApiKey", "authentication")
        assert_closed(ws, 1008)
    with ws_connect(server) as ws:
        reply = ws_call(ws, [{"taskType": "authentication", "apiKey": "oi_not_a_key"}])
        assert reply["errors"][0]["code"] == "invalidApiKey"
        assert_closed(ws, 1008)
    with ws_connect(server) as ws:
        reply = ws_call(ws, "[" * 100_000)
        assert reply["errors"][0]["code"] == "invalidRequestBody"
        assert_closed(ws, 1008)


def test_authentication_and_tasks_may_share_the_first_message(server: Server):
    with ws_connect(server) as ws:
        reply = ws_call(ws, [{"taskType": "authentication", "apiKey": server.key}, *PING])
        [auth, pong] = reply["data"]
        assert auth["connectionSessionUUID"] and pong == {"taskType": "ping", "pong": True}
        assert ws_call(ws, PING)["data"] == [{"taskType": "ping", "pong": True}]


def test_a_websocket_message_over_the_limit_is_refused(server: Server):
    with ws_connect(server) as ws:
        ws_call(ws, [{"taskType": "authentication", "apiKey": server.key}])
        with contextlib.suppress(ConnectionClosed):  # closed while it is still being sent
            ws.send("[" + " " * BODY_LIMIT + "]")
        assert_closed(ws, 1009)
    assert server.post(PING).status_code == 200


# -- revoked keys ----------------------------------------------------------------------------


def test_a_revoked_key_is_refused_within_5_s_on_an_open_websocket_and_over_rest(server: Server):
    key = new_key(server)
    with ws_connect(server) as ws:
        assert ws_call(ws, [{"taskType": "authentication", "apiKey": key}])["data"]
        assert ws_call(ws, PING)["data"][0]["pong"] is True
        assert server.post(PING, key=key).status_code == 200  # the key is cached now
        revoked_at = time.monotonic()
        assert anyio.run(revoke_key, Settings(data_dir=server.data_dir), key[:10])
        while server.post(PING, key=key).status_code == 200:
            assert time.monotonic() - revoked_at < 5
            time.sleep(0.1)
        assert server.post(PING, key=key).json()["errors"][0]["code"] == "invalidApiKey"
        reply = json.loads(ws.recv(timeout=6))
        assert time.monotonic() - revoked_at < 5.5
        [item] = reply["errors"]
        assert (item["code"], item["taskType"]) == ("invalidApiKey", "authentication")
        assert_closed(ws, 1008)

"""The Runware WebSocket's own rules, on the app in process: authentication first, and an
idle connection closed after its timeout while a busy one stays open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from openimagine.composition import build_api, prepare_store
from openimagine.config import Settings

KEY = "oi_ws_test_key"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", api_keys=[KEY], server={"ws_idle_timeout_s": 0.6}
    )
    anyio.run(lambda: prepare_store(settings, create_key=False))
    with TestClient(build_api(settings)) as c:
        yield c


def test_tasks_before_authentication_are_refused(client: TestClient):
    with client.websocket_connect("/v1") as ws:
        ws.send_json([{"taskType": "ping", "ping": True}])
        reply = ws.receive_json()
        assert reply["errors"][0]["code"] == "missingApiKey"
        with pytest.raises(WebSocketDisconnect) as closed:  # the first message must authenticate
            ws.receive_json()
        assert closed.value.code == 1008
    with client.websocket_connect("/v1") as ws:
        ws.send_json([{"taskType": "authentication", "apiKey": KEY}])
        assert ws.receive_json()["data"][0]["connectionSessionUUID"]
        ws.send_json([{"taskType": "ping", "ping": True}])
        assert ws.receive_json()["data"] == [{"taskType": "ping", "pong": True}]


def test_an_idle_connection_is_closed_and_a_busy_one_is_not(client: TestClient):
    with client.websocket_connect("/v1") as ws:
        ws.send_json([{"taskType": "authentication", "apiKey": KEY}])
        ws.receive_json()
        for _ in range(4):  # 1.2 s of traffic, every 0.3 s: longer than the timeout
            time.sleep(0.3)
            ws.send_json([{"taskType": "ping", "ping": True}])
            assert ws.receive_json()["data"][0]["pong"] is True
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()  # nothing sent: closed after 0.6 s
        assert closed.value.code == 1000

"""Webhooks from the outbox to a real receiver on 127.0.0.1: signed, retried, given up."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server, t2v

MAX_ATTEMPTS = 3


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver whose behaviour depends on the path:
    `/ok`, `/flaky` (500 twice per webhook-id, then 200), `/down` (500 always),
    `/busy` (429 with Retry-After: 0, then 200), `/forbidden` (403), `/redirect` (302 to a
    private address), `/hang` (answers after the sender's timeout)."""

    port: int = 0
    hits: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def tries_of(self, path: str, msg_id: str) -> int:
        return sum(1 for h in self.received(path) if h.headers["webhook-id"] == msg_id)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                rec.hits.append(Received(self.path, headers, body))
                tries = sum(1 for h in rec.hits if h.path == self.path)
            status = {"/put": 500 if tries == 1 else 200, "/put-forbidden": 403}[self.path]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                rec.hits.append(Received(self.path, headers, body))
            tries = rec.tries_of(self.path, headers.get("webhook-id", ""))
            if self.path == "/hang":
                time.sleep(2.5)
            status, extra = {
                "/ok": (200, {}),
                "/flaky": (500 if tries <= 2 else 200, {}),
                "/down": (500, {}),
                "/busy": (429 if tries <= 1 else 200, {"Retry-After": "0"}),
                "/forbidden": (403, {}),
                "/redirect": (302, {"Location": "http://10.0.0.1/hook"}),
                "/hang": (200, {}),
            }[self.path]
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def hook_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path
) -> Iterator[Server]:
    env = {
        "OPENIMAGINE_ALLOWED_NETWORKS": "127.0.0.1/32",
        "OPENIMAGINE_DELIVERY__WEBHOOK_BACKOFF_S": "0.2",
        "OPENIMAGINE_DELIVERY__WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "OPENIMAGINE_DELIVERY__WEBHOOK_TIMEOUT_S": "1",
    }
    srv = Server(
        tmp_path_factory.mktemp("hooks") / "data", checkpoint=tiny_checkpoint, env=env
    ).start()
    yield srv
    srv.stop()


def _expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks, computed here independently of the server's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _deliveries(server: Server, task_uuid: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.base}/v1/tasks/{task_uuid}/deliveries",
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=10,
    )
    r.raise_for_status()
    return list(r.json()["data"])


def _wait_deliveries(
    server: Server, task_uuid: str, n: int, timeout: float = 90
) -> list[dict[str, Any]]:
    """Wait until `n` deliveries of the task are final (delivered or failed)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = _deliveries(server, task_uuid)
        if len(rows) >= n and all(r["status"] != "pending" for r in rows):
            return rows
        time.sleep(0.2)
    raise TimeoutError(rows)


def test_each_result_is_posted_signed_after_retries(hook_server: Server, receiver: Receiver):
    task = t2v(numberResults=2, webhookURL=receiver.url("/flaky"), includeCost=True)
    hook_server.post([task])
    rows = _wait_deliveries(hook_server, task["taskUUID"], 2)
    assert [r["status"] for r in rows] == ["delivered", "delivered"]
    assert [r["attempts"] for r in rows] == [3, 3]  # two 500s, then 200

    secret = (hook_server.data_dir / "webhook-secret").read_text().strip()
    ok = [
        h for h in receiver.received("/flaky") if h.headers["webhook-id"] in {r["id"] for r in rows}
    ]
    assert len(ok) == 6
    items = {}
    for hit in ok:
        h = hit.headers
        assert abs(int(h["webhook-timestamp"]) - time.time()) < 120
        assert h["webhook-signature"] == _expected_signature(
            secret, h["webhook-id"], h["webhook-timestamp"], hit.body
        )
        [item] = json.loads(hit.body)["data"]
        items[item["videoUUID"]] = item
    # One POST per result, each the same item getResponse reports.
    polled = hook_server.poll(task["taskUUID"], n=2)["data"]
    assert set(items) == {i["videoUUID"] for i in polled}
    for item in items.values():
        assert item["taskUUID"] == task["taskUUID"] and item["status"] == "success"
        assert item["cost"] == 0.05
        assert httpx.get(item["videoURL"], timeout=30).status_code == 200


def test_429_is_retried(hook_server: Server, receiver: Receiver):
    task = t2v(webhookURL=receiver.url("/busy"))
    hook_server.post([task])
    [row] = _wait_deliveries(hook_server, task["taskUUID"], 1)
    assert (row["status"], row["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize(
    ("path", "attempts", "error"),
    [
        ("/down", MAX_ATTEMPTS, "HTTP 500; gave up after 3 tries"),
        ("/hang", MAX_ATTEMPTS, "ReadTimeout"),
        ("/forbidden", 1, "HTTP 403 (not retried)"),
        ("/redirect", 1, "redirect to http://10.0.0.1/hook (redirects are not followed)"),
    ],
)
def test_a_failing_receiver_is_recorded_and_the_task_still_succeeds(
    hook_server: Server, receiver: Receiver, path: str, attempts: int, error: str
):
    task = t2v(webhookURL=receiver.url(path))
    hook_server.post([task])
    [row] = _wait_deliveries(hook_server, task["taskUUID"], 1)
    assert (row["status"], row["attempts"]) == ("failed", attempts)
    assert error in row["lastError"]
    [item] = hook_server.poll(task["taskUUID"])["data"]
    assert item["status"] == "success"
    assert hook_server.post([{"taskType": "ping", "ping": True}]).status_code == 200


def test_a_private_address_is_never_called(hook_server: Server):
    # 10.0.0.1 is not in the allowed networks; nothing listens there either, so a call that
    # slipped through would show up as a timeout, not as this refusal.
    task = t2v(webhookURL="http://10.0.0.1:9/hook")
    hook_server.post([task])
    [row] = _wait_deliveries(hook_server, task["taskUUID"], 1)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "10.0.0.1 is a private" in row["lastError"]


def test_deliveries_of_another_owner_are_not_found(hook_server: Server, receiver: Receiver):
    task = t2v(webhookURL=receiver.url("/ok"))
    hook_server.post([task])
    r = httpx.get(
        f"{hook_server.base}/v1/tasks/{task['taskUUID']}/deliveries",
        headers={"Authorization": "Bearer not-a-key"},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "invalidApiKey"


def test_a_cancelled_task_posts_its_errors(hook_server: Server, receiver: Receiver):
    task = t2v(width=848, height=480, duration=10, webhookURL=receiver.url("/ok"))
    hook_server.post([task])
    hook_server.wait_running(task["taskUUID"])
    r = httpx.post(
        f"{hook_server.base}/v1/tasks/{task['taskUUID']}/cancel",
        headers={"Authorization": f"Bearer {hook_server.key}"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["data"][0]["taskUUID"] == task["taskUUID"]
    [error] = hook_server.poll(task["taskUUID"], timeout=60)["errors"]
    assert (error["code"], error["status"]) == ("taskCancelled", "error")
    [row] = _wait_deliveries(hook_server, task["taskUUID"], 1)
    assert row["status"] == "delivered"
    [hit] = [h for h in receiver.received("/ok") if h.headers["webhook-id"] == row["id"]]
    [posted] = json.loads(hit.body)["errors"]
    assert (posted["taskUUID"], posted["code"]) == (task["taskUUID"], "taskCancelled")


def test_each_result_is_put_to_the_upload_endpoint(
    hook_server: Server, receiver: Receiver, tmp_path: Path
):
    task = t2v(uploadEndpoint=receiver.url("/put"), outputFormat="WEBM")
    hook_server.post([task])
    [row] = _wait_deliveries(hook_server, task["taskUUID"], 1)
    assert (row["kind"], row["status"], row["attempts"]) == ("upload", "delivered", 2)
    [item] = hook_server.poll(task["taskUUID"])["data"]
    assert item["uploadStatus"] == "delivered"
    served = httpx.get(item["videoURL"], timeout=30).content
    put = receiver.received("/put")[-1]
    assert put.body == served  # the raw file, byte for byte
    assert put.headers["content-type"] == "video/webm"
    assert put.headers["content-length"] == str(len(served))


def test_an_upload_that_fails_is_reported_on_the_item(hook_server: Server, receiver: Receiver):
    task = t2v(uploadEndpoint=receiver.url("/put-forbidden"))
    hook_server.post([task])
    _wait_deliveries(hook_server, task["taskUUID"], 1)
    [item] = hook_server.poll(task["taskUUID"])["data"]
    assert item["status"] == "success"  # the clip itself is fine and served
    assert item["uploadStatus"] == "failed"
    assert "HTTP 403" in item["uploadError"]

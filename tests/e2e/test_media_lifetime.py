"""Inputs' lifetime and limits through a real server (no workers: tasks stay queued): an
upload expires after its TTL unless a task uses it, and its file leaves the disk; a key at its
stored-bytes cap gets a 429 and nothing is stored; too many reference images are refused by
name; and a key over its queue limit or daily budget is refused before any input is fetched."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import BIN, MODEL, Server
from tests.media_factory import data_uri, image_bytes

TTL_S = 2
PNG = image_bytes(64, 64)
CAP = len(PNG)  # room for exactly one such image


class CountingHost:
    """Serves one PNG at any path on 127.0.0.1 and counts the requests for each path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self) -> str:
        """A fresh path, so that its count is this test's own."""
        return f"{self.base}/{uuid.uuid4().hex}.png"

    def fetches(self, *urls: str) -> int:
        """How many requests these URLs got."""
        return sum(self.hits[url.removeprefix(self.base)] for url in urls)


@pytest.fixture(scope="module")
def host() -> Iterator[CountingHost]:
    counting = CountingHost()
    thread = threading.Thread(target=counting.httpd.serve_forever, daemon=True)
    thread.start()
    yield counting
    counting.httpd.shutdown()
    counting.httpd.server_close()


def start(data: Path, env: dict[str, str]) -> Server:
    env = {"OPENIMAGINE_ALLOWED_NETWORKS": "127.0.0.1/32", **env}
    # No worker runs, so no model is ever loaded: the checkpoint path is never read.
    return Server(data, checkpoint=data / "no-model", workers=0, env=env).start()


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Uploads live TTL_S seconds; the sweeper runs five times a second."""
    env = {
        "OPENIMAGINE_INPUTS__MEDIA_TTL_S": str(TTL_S),
        "OPENIMAGINE_DELIVERY__SWEEP_INTERVAL_S": "0.2",
    }
    server = start(tmp_path_factory.mktemp("short") / "data", env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Each key may store CAP bytes of inputs; a task takes two reference images at most."""
    env = {
        "OPENIMAGINE_INPUTS__MAX_REFERENCE_IMAGES": "2",
        "OPENIMAGINE_QUOTAS__MAX_STORED_BYTES_PER_KEY": str(CAP),
    }
    server = start(tmp_path_factory.mktemp("capped") / "data", env)
    yield server
    server.stop()


def new_key(server: Server, *limits: str) -> str:
    """A key of its own (its own stored bytes and quotas), made with `openimagine keys`."""
    done = subprocess.run(
        [str(BIN / "openimagine"), "keys", "create", *limits, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def upload(server: Server, key: str, png: bytes = PNG) -> httpx.Response:
    image = data_uri(png, "image/png")
    task = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": image}
    return server.post([task], key=key)


def i2v(image: str) -> dict[str, Any]:
    """A 1 s image-to-video task at 480p ($0.052)."""
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL,
        "positivePrompt": "the same scene at dusk",
        "duration": 1,
        "inputs": {"frameImages": [image]},
    }


def t2v(**fields: Any) -> dict[str, Any]:
    """A 1 s text-to-video task at 480x480 ($0.05)."""
    task = {k: v for k, v in i2v("").items() if k != "inputs"}
    return {**task, "width": 480, "height": 480, **fields}


def input_file(server: Server, media_uuid: str) -> Path:
    [path] = (server.data_dir / "blobs" / "inputs").glob(f"{media_uuid}.*")
    return path


def inputs_on_disk(server: Server) -> set[str]:
    return {p.stem for p in (server.data_dir / "blobs" / "inputs").iterdir()}


def wait_gone(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists(), f"{path} is still on disk"


def error_of(response: httpx.Response) -> dict[str, Any]:
    [error] = response.json()["errors"]
    return dict(error)


def test_an_unused_upload_expires_after_its_ttl_and_its_file_is_deleted(short_lived: Server):
    srv = short_lived
    key = new_key(srv)
    [item] = upload(srv, key).json()["data"]
    path = input_file(srv, item["imageUUID"])
    assert httpx.get(item["imageURL"], timeout=10).content == PNG

    wait_gone(path)
    assert httpx.get(item["imageURL"], timeout=10).status_code != 200
    late = srv.post([i2v(item["imageUUID"])], key=key)
    assert late.status_code == 404
    error = error_of(late)
    assert (error["code"], error["parameter"]) == ("mediaNotFound", "inputs.frameImages")
    assert "2 s after their last use" in error["message"]


def test_an_upload_a_task_uses_stays_past_its_ttl(short_lived: Server):
    srv = short_lived
    key = new_key(srv)
    [item] = upload(srv, key).json()["data"]
    assert srv.post([i2v(item["imageUUID"])], key=key).status_code == 200  # queued: it reads it

    time.sleep(TTL_S + 1.5)  # past the upload's own TTL, several sweeps later
    assert input_file(srv, item["imageUUID"]).read_bytes() == PNG
    assert srv.post([i2v(item["imageUUID"])], key=key).status_code == 200


def test_a_key_at_its_byte_cap_gets_429_and_nothing_is_stored(srv: Server, host: CountingHost):
    key = new_key(srv)
    [first] = upload(srv, key).json()["data"]
    before = inputs_on_disk(srv)

    full = upload(srv, key, image_bytes(64, 64, seed=1))
    assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
    error = error_of(full)
    assert (error["code"], error["limit"]) == ("storageLimitExceeded", CAP)
    assert f"{CAP:,} bytes" in error["message"]
    url = host.url()
    fetched = srv.post([i2v(url)], key=key)
    assert fetched.status_code == 429 and error_of(fetched)["code"] == "storageLimitExceeded"
    assert host.fetches(url) == 0  # refused before it was fetched
    assert inputs_on_disk(srv) == before  # nothing stored
    assert upload(srv, new_key(srv)).status_code == 200  # another key has its own room

    delete = {"taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()), "operation": "delete"}
    assert srv.post([{**delete, "media": first["imageUUID"]}], key=key).status_code == 200
    assert upload(srv, key, image_bytes(64, 64, seed=1)).status_code == 200


def test_more_reference_images_than_the_server_takes_are_refused_by_name(
    srv: Server, host: CountingHost
):
    key = new_key(srv)
    urls = [host.url() for _ in range(3)]
    refused = srv.post([t2v(inputs={"referenceImages": urls})], key=key)
    assert refused.status_code == 400
    error = error_of(refused)
    assert (error["code"], error["parameter"]) == (
        "invalidReferenceImages",
        "inputs.referenceImages",
    )
    assert "at most 2" in error["message"]
    assert host.fetches(*urls) == 0

    two = [data_uri(image_bytes(32, 32, seed=i), "image/png") for i in range(2)]
    assert srv.post([t2v(inputs={"referenceImages": two})], key=key).status_code == 200


def test_a_key_over_its_queue_limit_is_refused_before_its_inputs_are_fetched(
    srv: Server, host: CountingHost
):
    key = new_key(srv, "--max-queued", "1")
    assert srv.post([t2v()], key=key).status_code == 200  # its queue is now full
    url = host.url()
    refused = srv.post([i2v(url)], key=key)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert error_of(refused)["code"] == "tooManyQueuedTasks"
    assert host.fetches(url) == 0


def test_a_key_past_its_daily_budget_is_refused_before_its_inputs_are_fetched(
    srv: Server, host: CountingHost
):
    thrifty = new_key(srv, "--daily-budget-usd", "0.06")
    assert srv.post([t2v()], key=thrifty).status_code == 200  # $0.05 of $0.06
    url = host.url()
    refused = srv.post([i2v(url)], key=thrifty)  # $0.052 more
    assert refused.status_code == 429
    error = error_of(refused)
    assert error["code"] == "dailyBudgetExceeded" and "$0.06" in error["message"]
    assert host.fetches(url) == 0

    # The look before fetching refuses only what the budget cannot hold.
    roomy = new_key(srv, "--daily-budget-usd", "0.11")
    assert srv.post([t2v()], key=roomy).status_code == 200
    url = host.url()
    assert srv.post([i2v(url)], key=roomy).status_code == 200
    assert host.fetches(url) == 1

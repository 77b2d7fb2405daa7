"""What a shared server refuses at submit, and what its answers never leak, over real HTTP.

A URL the sender could never call, text no store can hold, a taskUUID that is not v4: each is
refused in the acknowledgement with an error naming the parameter, and nothing is stored.
Task UUIDs are one task in any case. A media link without its signature is a 403, and errors
name no path of the server. None of these needs a generation, so the server has no worker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PG_DSN
from tests.helpers import Server, t2v
from tests.media_factory import data_uri

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without workers (tasks stay queued), its access log on."""
    root = tmp_path_factory.mktemp("hygiene")
    server = Server(root / "data", checkpoint=root, workers=0, args=["--access-log"]).start()
    yield server
    server.stop()


def post_json(server: Server, tasks: list[dict[str, Any]]) -> httpx.Response:
    """POST tasks as ASCII JSON, so that a lone surrogate travels as its `\\ud800` escape
    (httpx's own encoder cannot encode one)."""
    return httpx.post(
        server.base + "/v1",
        content=json.dumps(tasks).encode(),
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        timeout=30,
    )


def refused(response: httpx.Response, code: str, parameter: str, task: dict[str, Any]) -> str:
    """Assert a 400 naming `parameter` for `task`; return the message."""
    assert response.status_code == 400, response.text
    [item] = response.json()["errors"]
    assert (item["code"], item["parameter"]) == (code, parameter), item
    assert item["taskUUID"] == task["taskUUID"] and item["taskType"] == "videoInference"
    return str(item["message"])


def assert_not_stored(server: Server, task_uuid: str) -> None:
    r = server.post([{"taskType": "getResponse", "taskUUID": task_uuid}])
    assert r.status_code == 404, r.text
    assert r.json()["errors"][0]["code"] == "taskNotFound"


def assert_still_serving(server: Server) -> None:
    task = t2v()
    assert server.post([task]).status_code == 200
    [item] = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()["data"]
    assert item["status"] == "processing"


# -- URLs the sender could not send --------------------------------------------------------

UNSENDABLE = [
    pytest.param("http://example.com:99999/hook", id="port-99999"),
    pytest.param("http://example.com:0/hook", id="port-0"),
    pytest.param("http://example.com:http/hook", id="port-not-a-number"),
    pytest.param("http://example.com/ho\x00ok", id="nul"),
    pytest.param("http://example.com/a hook", id="space"),
    pytest.param("http://exa\tmple.com/hook", id="tab-in-host"),
    pytest.param("ftp://example.com/hook", id="ftp"),
    pytest.param("http:///hook", id="no-host"),
    pytest.param("http://[::1/hook", id="broken-ipv6"),
    pytest.param("https://example.com/" + "a" * 9000, id="too-long"),
]


@pytest.mark.parametrize("url", UNSENDABLE)
@pytest.mark.parametrize("field", ["webhookURL", "uploadEndpoint"])
def test_an_unsendable_delivery_url_is_refused_at_submit(srv: Server, field: str, url: str):
    task = t2v(**{field: url})
    refused(post_json(srv, [task]), f"invalid{field[0].upper()}{field[1:]}", field, task)
    assert_not_stored(srv, task["taskUUID"])


@pytest.mark.parametrize("url", ["http://example.com:99999/a.png", "http://example.com/a\x00.png"])
def test_an_unsendable_input_url_is_refused_naming_the_input(srv: Server, url: str):
    task = t2v(width=None, height=None, inputs={"frameImages": [url]})
    refused(post_json(srv, [task]), "invalidFrameImages", "inputs.frameImages", task)
    assert_not_stored(srv, task["taskUUID"])
    assert_still_serving(srv)


# -- text no store can hold -------------------------------------------------------------------


# chr(): lone surrogates, which some tools cannot hold as literals
@pytest.mark.parametrize("bad", ["\x00", chr(0xD800), chr(0xDFFF)], ids=["nul", "lead", "trail"])
@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("positivePrompt", lambda bad: {"positivePrompt": f"a lighthouse {bad} in a storm"}),
        ("webhookURL", lambda bad: {"webhookURL": f"{HOOK}?x={bad}"}),
        (
            "inputs.frameImages",
            lambda bad: {"width": None, "height": None, "inputs": {"frameImages": [f"ab{bad}"]}},
        ),
    ],
)
def test_a_nul_or_lone_surrogate_is_refused_naming_the_field(
    srv: Server, field: str, make: Any, bad: str
):
    task = t2v(**make(bad))
    code = "invalid" + field.split(".")[-1][0].upper() + field.split(".")[-1][1:]
    refused(post_json(srv, [task]), code, field, task)
    assert_not_stored(srv, task["taskUUID"])
    assert_still_serving(srv)


# -- taskUUID --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_uuid",
    [
        str(uuid.uuid1()),
        str(uuid.uuid3(uuid.NAMESPACE_URL, "https://example.com")),
        str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com")),
        # version 4 bits, but the NCS variant: not an RFC 4122 UUID v4
        str(uuid.UUID(int=uuid.uuid4().int & ~(0xC << 60))),
    ],
    ids=["v1", "v3", "v5", "v4-ncs-variant"],
)
def test_a_task_uuid_that_is_not_v4_is_refused(srv: Server, task_uuid: str):
    task = t2v(taskUUID=task_uuid)
    message = refused(srv.post([task]), "invalidTaskUUID", "taskUUID", task)
    assert "version 4" in message
    assert_not_stored(srv, task_uuid)


def test_task_uuids_are_compared_case_insensitively(srv: Server):
    task = t2v(taskUUID=str(uuid.uuid4()).upper())
    upper, lower = task["taskUUID"], task["taskUUID"].lower()
    ack = srv.post([task])
    assert ack.json() == {"data": [{"taskType": "videoInference", "taskUUID": upper}]}
    # Found in either spelling; each reply echoes the spelling its request sent (the SDKs
    # match replies by the exact string).
    for spelling in (lower, upper):
        r = srv.post([{"taskType": "getResponse", "taskUUID": spelling}])
        assert r.status_code == 200, r.text
        [item] = r.json()["data"]
        assert (item["taskUUID"], item["status"]) == (spelling, "processing")
    # The same request in the other case is the same task: acknowledged, not a conflict, and
    # still one result.
    again = srv.post([{**task, "taskUUID": lower}])
    assert again.json() == {"data": [{"taskType": "videoInference", "taskUUID": lower}]}
    other = srv.post([{**task, "taskUUID": lower, "positivePrompt": "another prompt"}])
    assert other.status_code == 409
    assert other.json()["errors"][0]["code"] == "conflictTaskUUID"
    assert len(srv.post([{"taskType": "getResponse", "taskUUID": lower}]).json()["data"]) == 1
    # The routes beside the protocol, and the OpenAI door, take either case too.
    video = httpx.get(
        f"{srv.base}/v1/videos/{upper}", headers={"Authorization": f"Bearer {srv.key}"}, timeout=10
    )
    assert video.status_code == 200 and video.json()["id"] == lower
    r = httpx.get(
        f"{srv.base}/v1/tasks/{upper}/deliveries",
        headers={"Authorization": f"Bearer {srv.key}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


# -- media links -----------------------------------------------------------------------------

MEDIA = f"/media/results/{uuid.uuid4()}.mp4"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?exp=4102444800",
        "?sig=abc",
        "?exp=soon&sig=abc",
        "?exp=-1&sig=abc",
        "?exp=4102444800&sig=%ED%A0%80",
    ],
    ids=["none", "exp-only", "sig-only", "exp-not-a-number", "exp-negative", "sig-not-utf8"],
)
def test_a_media_url_without_a_valid_signature_is_forbidden(srv: Server, query: str):
    r = httpx.get(srv.base + MEDIA + query, timeout=10)
    assert r.status_code == 403, r.text
    [item] = r.json()["errors"]
    assert item["code"] == "invalidSignature" and item["message"]


def test_the_access_log_masks_signatures(srv: Server):
    secret = "TOPSECRET" + uuid.uuid4().hex
    url = f"{srv.base}{MEDIA}?exp=4102444800&sig={secret}"
    assert httpx.get(url, timeout=10).status_code == 403
    logged = f"GET {MEDIA}?[redacted] HTTP/1.1"
    deadline = time.monotonic() + 10
    while logged not in srv.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = srv.log.read_text()
    assert logged in log  # the request is logged, its query masked
    assert secret not in log


# -- errors that leak nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "code", "parameter"),
    [
        (
            {"video": data_uri(b"this is not a video\n" * 50, "video/mp4")},
            "invalidVideo",
            "inputs.video",
        ),
        (
            {"frameImages": [data_uri(b"this is not an image\n" * 5, "image/png")]},
            "invalidImage",
            "inputs.frameImages",
        ),
    ],
    ids=["video", "image"],
)
def test_a_bad_input_is_refused_without_the_servers_paths(
    srv: Server, inputs: dict[str, Any], code: str, parameter: str
):
    task = t2v(width=None, height=None, duration=2, inputs=inputs)
    message = refused(srv.post([task]), code, parameter, task)
    data_dir = str(Path(srv.data_dir).resolve())
    for leak in (data_dir, str(srv.data_dir), ".tmp", "/tmp", "BytesIO", " at 0x"):
        assert leak not in message, message


# -- PostgreSQL ------------------------------------------------------------------------------


def _with_password(url: str, password: str) -> tuple[str, str]:
    """`url` with a password in its user info (a trusting server ignores it), and the
    password it then carries (the one it had, if any)."""
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    user, _, existing = userinfo.partition(":")
    password = existing or password
    return f"{scheme}://{user}:{password}@{host}", password


@pytest.mark.postgres
def test_postgres_never_sees_a_nul_and_the_banner_hides_its_password(
    tmp_path: Path, pg_schema: str
):
    store_url, password = _with_password(pg_schema, "s3cret-" + uuid.uuid4().hex[:8])
    server = Server(tmp_path / "data", checkpoint=tmp_path, workers=0, store_url=store_url)
    server.start()
    try:
        cases = [
            ({"positivePrompt": "a\x00b"}, "invalidPositivePrompt", "positivePrompt"),
            ({"positivePrompt": "a" + chr(0xD800)}, "invalidPositivePrompt", "positivePrompt"),
            ({"webhookURL": HOOK + "\x00"}, "invalidWebhookURL", "webhookURL"),
            ({"uploadEndpoint": HOOK + "?a=\x00"}, "invalidUploadEndpoint", "uploadEndpoint"),
        ]
        for changes, code, parameter in cases:
            task = t2v(**changes)
            refused(post_json(server, [task]), code, parameter, task)
            assert_not_stored(server, task["taskUUID"])
        schema = pg_schema.rsplit("%3D", 1)[1]
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            row = conn.execute(f"SELECT count(*) FROM {schema}.jobs").fetchone()  # noqa: S608
        assert row == (0,)
        assert_still_serving(server)
    finally:
        server.stop()
    banner = server.log.read_text().replace("\n", "")  # rich folds long lines
    assert password not in banner
    user = store_url.split("://", 1)[1].split(":", 1)[0]
    assert f"store: postgresql+psycopg://{user}:***@" in banner

"""The official `openai` Python SDK, unchanged, against `/v1/videos` on a real server."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from tests.helpers import MODEL, Server, ffprobe, streams

# The SDK marks its video methods deprecated (OpenAI's Sora API shuts down in 2026); the
# protocol is what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base + "/v1", api_key=server.key, max_retries=0) as c:
        yield c


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


@pytest.mark.timeout(300)  # a 4 s clip ("4" is the shortest the SDK's types allow)
def test_create_poll_download_and_thumbnail(client: openai.OpenAI, server: Server, tmp_path: Path):
    video = client.videos.create(model=MODEL, prompt="a lighthouse", size="640x480", seconds="4")
    assert video.object == "video" and video.status in ("queued", "in_progress")
    assert (video.model, video.size, video.seconds) == (MODEL, "640x480", "4")
    assert video.prompt == "a lighthouse" and video.error is None
    uuid.UUID(video.id)  # the Runware taskUUID
    done = client.videos.poll(video.id, poll_interval_ms=250)
    assert done.status == "completed", done.error
    assert done.progress == 100 and done.completed_at is not None and done.expires_at is not None
    assert done.created_at <= done.completed_at < done.expires_at
    path = tmp_path / "video.mp4"
    client.videos.download_content(video.id).write_to_file(path)
    info = ffprobe(path)
    [v], [a] = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 480)
    assert int(v["nb_read_packets"]) == 96 and v["avg_frame_rate"] == "24/1"
    assert a["codec_name"] == "aac" and a["channels"] == 2
    assert abs(float(a["duration"]) - 4.0) < 0.03
    thumb = client.videos.download_content(video.id, variant="thumbnail")
    assert thumb.response.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(thumb.content))
    assert image.format == "WEBP" and image.size == (640, 480)
    # The same job, through the Runware protocol: priced at 480p, $0.05 a second.
    [item] = server.poll(video.id)["data"]
    assert item["status"] == "success" and item["cost"] == 0.2


def test_json_body_defaults_the_model_and_honours_idempotency_keys(server: Server):
    body = {"prompt": "a red door", "size": "480x480", "seconds": 1}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = httpx.post(f"{server.base}/v1/videos", json=body, headers=auth(server) | key)
    assert first.status_code == 200, first.text
    video = first.json()
    assert video["model"] == MODEL and (video["size"], video["seconds"]) == ("480x480", "1")
    again = httpx.post(f"{server.base}/v1/videos", json=body, headers=auth(server) | key)
    assert again.json()["id"] == video["id"]
    other = {**body, "prompt": "a blue door"}
    conflict = httpx.post(f"{server.base}/v1/videos", json=other, headers=auth(server) | key)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict_task_uuid"
    server.poll(video["id"])


def test_list_pages_with_a_cursor_and_cancel_then_delete(client: openai.OpenAI, server: Server):
    ids = [
        client.videos.create(prompt=f"clip {i}", size="480x480", seconds="1").id for i in range(3)
    ]
    page = client.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[:0:-1] and page.has_more
    assert page.last_id == ids[1]
    nxt = client.videos.list(limit=2, after=page.last_id)
    assert nxt.data[0].id == ids[0]
    walked = [v.id for v in client.videos.list(limit=2)]  # the SDK follows the cursor
    assert len(walked) == len(set(walked)) and set(ids) <= set(walked)
    oldest_first = [v.id for v in client.videos.list(order="asc", limit=100)]
    assert oldest_first.index(ids[0]) < oldest_first.index(ids[1]) < oldest_first.index(ids[2])
    raw = httpx.get(f"{server.base}/v1/videos", params={"limit": 1}, headers=auth(server)).json()
    assert raw["object"] == "list" and raw["first_id"] == raw["last_id"] == ids[2]
    for video_id in ids:  # cancel (an extension), then delete
        r = httpx.post(f"{server.base}/v1/videos/{video_id}/cancel", headers=auth(server))
        assert r.status_code == 200, r.text
        done = client.videos.poll(video_id, poll_interval_ms=100)
        assert done.status == "failed" and done.error is not None
        assert done.error.code == "task_cancelled"
        deleted = client.videos.delete(video_id)
        assert (deleted.id, deleted.object, deleted.deleted) == (video_id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(ids[0])
    with pytest.raises(openai.NotFoundError) as err:
        client.videos.list(after=ids[0])
    assert err.value.body["param"] == "after"  # type: ignore[index]


def test_delete_removes_the_file_and_the_task(client: openai.OpenAI, server: Server):
    video = client.videos.create(prompt="a short clip", size="480x480", seconds="1")
    assert client.videos.poll(video.id, poll_interval_ms=250).status == "completed"
    [item] = server.poll(video.id)["data"]
    assert httpx.get(item["videoURL"]).status_code == 200
    assert client.videos.delete(video.id).deleted
    assert httpx.get(item["videoURL"]).status_code == 404  # the file is gone
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)
    gone = server.post([{"taskType": "getResponse", "taskUUID": video.id}])
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"size": "1792x1024"}, "size", "unsupported_dimensions"),
        ({"size": "848x480", "seconds": "20"}, "seconds", "unsupported_duration"),
        ({"model": "sora-2"}, "model", "model_not_found"),
        ({"extra_body": {"quality": "high"}}, "quality", "unknown_parameter"),
        ({"input_reference": ("frame.png", b"not an image", "image/png")}, "input_reference", None),
    ],
)
def test_invalid_requests_are_400s_naming_the_parameter(
    client: openai.OpenAI, kwargs: dict, param: str, code: str | None
):
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt="a lighthouse", **kwargs)
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param, body
    assert body["type"] == "invalid_request_error" and body["message"]
    if code is not None:
        assert body["code"] == code


def test_auth_and_unknown_ids(client: openai.OpenAI, server: Server):
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key="oi_wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as err:
        bad.videos.list()
    assert err.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    assert httpx.get(f"{server.base}/v1/videos").status_code == 401
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(str(uuid.uuid4()))
    with pytest.raises(openai.BadRequestError) as bad_variant:
        client.videos.download_content(str(uuid.uuid4()), variant="spritesheet")
    assert bad_variant.value.body["param"] == "variant"  # type: ignore[index]


def test_image_to_video_accepts_a_file_or_a_data_url(client: openai.OpenAI, server: Server):
    video = client.videos.create(
        prompt="the door opens",
        input_reference=("frame.png", png(960, 540), "image/png"),
        size="848x480",
        seconds="1",
    )
    assert video.size == "848x480"  # the 480p size nearest the image's 16:9
    done = client.videos.poll(video.id, poll_interval_ms=250)
    # Until the worker conditions on the image, it may fail: then it says why.
    assert done.status == "completed" or (done.status == "failed" and done.error is not None)
    uri = "data:image/png;base64," + base64.b64encode(png(480, 640)).decode()
    body = {"prompt": "a portrait", "seconds": "1", "input_reference": {"image_url": uri}}
    r = httpx.post(f"{server.base}/v1/videos", json=body, headers=auth(server))
    assert r.status_code == 200, r.text
    assert r.json()["size"] == "480x640"  # 480p (the default tier) at the image's 3:4
    client.videos.poll(r.json()["id"], poll_interval_ms=250)

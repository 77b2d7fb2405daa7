"""xAI's REST video API on a real server: the Vercel AI SDK's xAI provider (`ai` +
`@ai-sdk/xai`), unchanged, under Node, and plain HTTP for the shapes the SDK does not show.

The Node packages come from `make .venv-sdk/node-ai-xai/.ok` (`make sdk-envs`, which `make test`
runs); the script, `sdk/ai_sdk_xai.mjs`, loads them from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO as CARD
from openimagine.models.pricing import quote
from tests.helpers import MODEL, ROOT, Server, ffprobe, streams
from tests.media_factory import data_uri, image_bytes, write_video

SCRIPT = Path(__file__).parent / "sdk" / "ai_sdk_xai.mjs"
NODE_DIR = ROOT / ".venv-sdk" / "node-ai-xai"
XAI_MODEL = "grok-imagine-video"
TICKS_PER_USD = 10**10  # xAI's `cost_in_usd_ticks`


def run_ai_sdk(server: Server, key: str | None = None, **case: Any) -> dict[str, Any]:
    """One `experimental_generateVideo` call through the script; its JSON line."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ai").is_dir():
        pytest.fail(f"node or {NODE_DIR}/node_modules is missing: run `make sdk-envs`")
    out = subprocess.run(
        [node, str(SCRIPT), json.dumps(case)],
        env={
            **os.environ,
            "OI_NODE_DIR": str(NODE_DIR),
            "OI_KEY": key or server.key,
            "OI_HTTP_URL": f"{server.base}/v1",
        },
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def size(aspect: str, tier: str = "480p") -> tuple[int, int]:
    """The card's size for xAI's `aspect_ratio` × `resolution`."""
    [found] = [s for s in CARD.sizes if (s.aspect, s.tier) == (aspect, tier)]
    return found.width, found.height


def ticks(
    seconds: int, *, tier: str = "480p", image: bool = False, video_s: int | None = None
) -> int:
    """The card's price of one clip, in xAI's ticks."""
    cost = quote(
        CARD,
        tier=tier,
        output_seconds=Fraction(seconds),
        image_input=image,
        input_video_seconds=None if video_s is None else Fraction(video_s),
    )
    return int(cost * TICKS_PER_USD)


def check_clip(path: Path, width: int, height: int, seconds: int) -> None:
    """H.264 at the size asked for, 24 fps × `seconds` frames, and a stereo AAC track."""
    info = ffprobe(path)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", width, height)
    assert video["avg_frame_rate"] == "24/1"
    assert int(video["nb_read_packets"]) == CARD.fps * seconds
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert abs(float(audio["duration"]) - seconds) < 0.03


def check_sdk_result(out: dict[str, Any], server: Server, seconds: int, cost_ticks: int) -> None:
    """What the SDK reports (`providerMetadata.xai`), and the same job through Runware."""
    assert out["ok"] and out["warnings"] == [], out
    assert out["mediaType"] == "video/mp4"
    assert out["responses"] == [{"modelId": XAI_MODEL}]
    meta = out["providerMetadata"]["xai"]
    assert meta["duration"] == seconds and meta["progress"] == 100
    assert meta["costInUsdTicks"] == cost_ticks
    request_id = meta["requestId"]
    uuid.UUID(request_id)  # the Runware taskUUID
    assert meta["videoUrl"].startswith(server.base + "/")
    [item] = server.poll(request_id)["data"]
    assert item["status"] == "success" and item["videoURL"] == meta["videoUrl"]
    assert round(item["cost"] * TICKS_PER_USD) == cost_ticks


# The SDK's own `resolution` ("854x480", which the provider maps to "480p") and the provider
# option `providerOptions.xai.resolution`.
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("aspect", "resolution", "seconds", "expected"),
    [
        ("16:9", {"resolution": "854x480"}, 1, (848, 480)),
        ("2:3", {"xaiResolution": "480p"}, 2, (480, 720)),
    ],
)
def test_ai_sdk_text_to_video(
    server: Server,
    tmp_path: Path,
    aspect: str,
    resolution: dict[str, str],
    seconds: int,
    expected: tuple[int, int],
):
    assert size(aspect) == expected  # the card agrees with the model page's table
    out = run_ai_sdk(
        server,
        mode="t2v",
        out=str(tmp_path / "t2v.mp4"),
        aspectRatio=aspect,
        duration=seconds,
        **resolution,
    )
    check_sdk_result(out, server, seconds, ticks(seconds))  # $0.05 a second at 480p
    check_clip(Path(out["file"]), *expected, seconds)


@pytest.mark.timeout(300)
def test_ai_sdk_image_to_video(server: Server, tmp_path: Path):
    """The SDK sends the image's bytes as a data URL in `image.url`; its 4:3 aspect decides."""
    image = tmp_path / "first.png"
    image.write_bytes(image_bytes(640, 480))
    out = run_ai_sdk(
        server,
        mode="i2v",
        out=str(tmp_path / "i2v.mp4"),
        image=str(image),
        duration=1,
        xaiResolution="480p",
    )
    check_sdk_result(out, server, 1, ticks(1, image=True))  # $0.05 + $0.002
    check_clip(Path(out["file"]), *size("4:3"), 1)


@pytest.mark.timeout(300)
def test_ai_sdk_edit(server: Server, tmp_path: Path):
    """`providerOptions.xai.mode: "edit-video"` posts to `/v1/videos/edits`: the output keeps
    the input's aspect (4:3, at 480p) and length (2 s)."""
    source = write_video(tmp_path / "source.mp4", frames=48, fps=24, width=320, height=240)
    out = run_ai_sdk(server, mode="edit", out=str(tmp_path / "edit.mp4"), video=str(source))
    check_sdk_result(out, server, 2, ticks(2, video_s=2))  # 2 s out + 2 s of input video
    check_clip(Path(out["file"]), *size("4:3"), 2)


@pytest.mark.timeout(300)
def test_ai_sdk_extension(server: Server, tmp_path: Path):
    """`mode: "extend-video"` posts to `/v1/videos/extensions` with `duration`: the 2 s input
    followed by 2 s more, at the input's aspect (4:3, at 480p)."""
    source = write_video(tmp_path / "source.mp4", frames=48, fps=24, width=320, height=240)
    out = run_ai_sdk(
        server, mode="extend", out=str(tmp_path / "ext.mp4"), video=str(source), duration=2
    )
    # the whole 4 s output at $0.05 a second, plus the 2 s input at $0.01 a second
    check_sdk_result(out, server, 4, ticks(4, video_s=2))
    check_clip(Path(out["file"]), *size("4:3"), 4)


@pytest.mark.parametrize(
    ("case", "status", "param", "code"),
    [
        ({"key": "oi_wrong_key"}, 401, None, "invalid_api_key"),
        ({"generateAudio": False}, 400, "generate_audio", "unsupported_parameter"),
        ({"aspectRatio": "21:9"}, 400, "aspect_ratio", "unsupported_dimensions"),
        ({"duration": 16}, 400, "duration", "unsupported_duration"),
    ],
)
def test_ai_sdk_errors(
    server: Server, tmp_path: Path, case: dict[str, Any], status: int, param: str, code: str
):
    """Refused at submit: the SDK raises an `APICallError` carrying the server's message."""
    fields = {"mode": "t2v", "aspectRatio": "1:1", "duration": 1, **case}
    key = fields.pop("key", None)
    out = run_ai_sdk(server, key, out=str(tmp_path / "none.mp4"), expectError=True, **fields)
    assert out["ok"] is False
    error = out["error"]
    assert error["name"] == "AI_APICallError" and error["statusCode"] == status
    assert error["isRetryable"] is False
    assert error["url"] == f"{server.base}/v1/videos/generations"
    body = error["data"]["error"]
    assert (body["param"], body["code"], body["type"]) == (param, code, "invalid_request_error")
    assert error["message"] == body["message"]
    if param:
        assert body["message"].startswith(f"{param}: ")
    assert not (tmp_path / "none.mp4").exists()


# Plain HTTP.


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


def post(server: Server, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/v1/videos/{path}", json=body, headers=auth(server) | headers, timeout=30
    )


def get(server: Server, video_id: str) -> httpx.Response:
    return httpx.get(f"{server.base}/v1/videos/{video_id}", headers=auth(server), timeout=30)


def cancel(server: Server, video_id: str) -> None:
    r = httpx.post(f"{server.base}/v1/videos/{video_id}/cancel", headers=auth(server), timeout=30)
    assert r.status_code == 200, r.text


def wait(server: Server, video_id: str, pending: int, timeout: float = 240) -> httpx.Response:
    """Poll until the answer's status code is no longer `pending`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = get(server, video_id)
        if r.status_code != pending:
            return r
        time.sleep(0.25)
    raise TimeoutError(f"{video_id} still pending")


@pytest.mark.timeout(300)
def test_xai_task_polls_in_xai_shape(server: Server, tmp_path: Path):
    """202 with a JSON body while pending (`@ai-sdk/xai` 3.x fails on an empty one), then 200
    with the video, the model by xAI's name and the price in ticks."""
    body = {
        "model": MODEL,  # the card's id is accepted as well as "grok-imagine-video"
        "prompt": "a lighthouse at dusk",
        "duration": 1,
        "aspect_ratio": "1:1",
        "resolution": "480p",
        "generate_audio": True,
    }
    r = post(server, "generations", body)
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["request_id"]
    request_id = r.json()["request_id"]
    pending = get(server, request_id)  # seconds before the worker can finish
    assert pending.status_code == 202, pending.text
    assert pending.headers["content-type"] == "application/json"
    assert set(pending.json()) == {"status", "progress"}
    assert pending.json()["status"] == "pending" and 0 <= pending.json()["progress"] <= 99
    done = wait(server, request_id, pending=202)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert set(answer) == {"status", "video", "model", "usage", "progress"}
    assert (answer["status"], answer["model"], answer["progress"]) == ("done", XAI_MODEL, 100)
    assert answer["usage"] == {"cost_in_usd_ticks": ticks(1)}
    video = answer["video"]
    assert set(video) == {"url", "duration", "respect_moderation"}
    assert video["duration"] == 1 and video["respect_moderation"] is True
    check_clip(server.download(video["url"], tmp_path / "done.mp4"), *size("1:1"), 1)


@pytest.mark.timeout(300)
def test_a_cancelled_xai_task_answers_failed(server: Server):
    """`POST /v1/videos/{id}/cancel` (the server's own) makes it xAI's `failed`, with a code."""
    r = post(server, "generations", {"prompt": "a lighthouse", "duration": 1})
    assert r.status_code == 200, r.text
    request_id = r.json()["request_id"]
    cancel(server, request_id)
    done = wait(server, request_id, pending=202, timeout=100)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert set(answer) == {"status", "model", "error", "progress"}
    assert (answer["status"], answer["model"], answer["progress"]) == ("failed", XAI_MODEL, 100)
    assert answer["error"]["code"] == "cancelled" and answer["error"]["message"]


@pytest.mark.timeout(300)
def test_openai_created_video_keeps_openai_shape(server: Server):
    """The same GET, for a video made at `POST /v1/videos`, answers as OpenAI's door."""
    created = httpx.post(
        f"{server.base}/v1/videos",
        json={"prompt": "a red door", "size": "480x480", "seconds": "1"},
        headers=auth(server),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    video_id = created.json()["id"]
    r = get(server, video_id)
    assert r.status_code == 200
    assert r.json()["object"] == "video" and r.json()["status"] in ("queued", "in_progress")
    assert "openai-poll-after-ms" in r.headers
    deadline = time.monotonic() + 240
    while r.json()["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.25)
        r = get(server, video_id)
    video = r.json()
    assert r.status_code == 200 and video["status"] == "completed", video
    assert (video["object"], video["id"], video["model"]) == ("video", video_id, MODEL)
    assert (video["size"], video["seconds"], video["progress"]) == ("480x480", "1", 100)
    assert not {"request_id", "usage", "video"} & set(video)


_IMAGE = {"url": data_uri(image_bytes(64, 48), "image/png")}
_VIDEO = {"url": "https://example.com/clip.mp4"}  # refused before it is fetched


@pytest.mark.parametrize(
    ("path", "fields", "param", "code"),
    [
        ("generations", {"aspect_ratio": "21:9"}, "aspect_ratio", "unsupported_dimensions"),
        ("generations", {"aspect_ratio": "16:10"}, "aspect_ratio", "unsupported_dimensions"),
        ("generations", {"duration": 0}, "duration", "unsupported_duration"),
        ("generations", {"duration": 16}, "duration", "unsupported_duration"),
        ("generations", {"duration": "2"}, "duration", "unsupported_duration"),
        ("generations", {"duration": 1.5}, "duration", "unsupported_duration"),
        ("generations", {"duration": True}, "duration", "unsupported_duration"),
        ("generations", {"resolution": "1080p"}, "resolution", "invalid_argument"),
        ("generations", {"resolution": "848x480"}, "resolution", "invalid_argument"),
        ("generations", {"image": _IMAGE["url"]}, "image", "invalid_argument"),
        ("generations", {"image": {"url": "ftp://example.com/a.png"}}, "image", None),
        ("generations", {"image": {"file_id": "not-a-uuid"}}, "image", "invalid_argument"),
        ("generations", {"image": {**_IMAGE, "file_id": str(uuid.uuid4())}}, "image", None),
        ("generations", {"image": {"url": "data:image/png;base64,AAAA"}}, "image", None),
        ("generations", {"image": {"url": "http://10.0.0.1/a.png"}}, "image", None),
        ("generations", {"generate_audio": False}, "generate_audio", "unsupported_parameter"),
        ("generations", {"last_frame": _IMAGE}, "last_frame", "unsupported_parameter"),
        ("generations", {"model": "grok-imagine-video-1.5"}, "model", "invalid_model"),
        ("generations", {"prompt": None}, "prompt", "missing_prompt"),
        ("edits", {}, "video", "missing_video"),
        ("edits", {"video": "https://example.com/clip.mp4"}, "video", "invalid_argument"),
        ("edits", {"video": {"url": "ftp://example.com/a.mp4"}}, "video", None),
        ("edits", {"video": {"url": "data:video/mp4;base64,AAAAAAAA"}}, "video", None),
        ("edits", {"video": _VIDEO, "duration": 2}, "duration", "invalid_argument"),
        ("edits", {"video": _VIDEO, "aspect_ratio": "16:9"}, "aspect_ratio", None),
        ("edits", {"video": _VIDEO, "resolution": "480p"}, "resolution", None),
        ("edits", {"video": _VIDEO, "image": _IMAGE}, "image", None),
        ("edits", {"video": _VIDEO, "generate_audio": False}, "generate_audio", None),
    ],
)
def test_field_errors_name_the_xai_field(
    server: Server, path: str, fields: dict[str, Any], param: str, code: str | None
):
    body = {"model": XAI_MODEL, "prompt": "a lighthouse", **fields}
    r = post(server, path, {k: v for k, v in body.items() if v is not None})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["type"]) == (param, "invalid_request_error"), error
    assert error["message"].startswith(f"{param}: ") or param == "model", error
    if code is not None:
        assert error["code"] == code, error


def test_unknown_request_id_is_404_and_keys_are_required(server: Server):
    missing = str(uuid.uuid4())
    r = get(server, missing)
    assert r.status_code == 404
    error = r.json()["error"]
    assert (error["code"], error["type"]) == ("task_not_found", "invalid_request_error")
    assert missing in error["message"]
    for method, path in [("POST", "generations"), ("POST", "edits"), ("GET", missing)]:
        r = httpx.request(method, f"{server.base}/v1/videos/{path}", json={}, timeout=30)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "missing_api_key"
        bad = {"Authorization": "Bearer oi_wrong_key"}
        r = httpx.request(method, f"{server.base}/v1/videos/{path}", json={}, headers=bad)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.timeout(300)
def test_a_retried_submit_with_its_idempotency_key_is_one_video(server: Server):
    body = {"prompt": "a lighthouse", "duration": 1, "aspect_ratio": "1:1"}
    key = {"Idempotency-Key": f"aisdk_vid_{uuid.uuid4().hex}"}
    first = post(server, "generations", body, **key)
    again = post(server, "generations", body, **key)
    assert first.status_code == again.status_code == 200
    ids = first.json()["request_id"], again.json()["request_id"]
    for request_id in set(ids):  # leave the shared server's queue empty
        cancel(server, request_id)
    assert ids[0] == ids[1]

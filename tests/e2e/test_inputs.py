"""Image-to-video, video-to-video and every way media comes in, against a real server and a
real media host on 127.0.0.1 (the one network the server is allowed to fetch from)."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_sdks import LEGACY, run_sdk
from tests.helpers import MODEL, Server, ffprobe, streams
from tests.media_factory import (
    data_uri,
    huge_png_header,
    image_bytes,
    rotated_jpeg,
    write_video,
)


class MediaHost:
    """Serves files put in `files`, plus `/missing` (404), `/slow` (answers after the
    server's fetch timeout) and `/to-private` (a redirect to a private address)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/slow":
                    time.sleep(3)
                if self.path == "/to-private":
                    self.send_response(302)
                    self.send_header("Location", "http://10.0.0.1/photo.png")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, mime = host.files.get(self.path, (b"not found", "text/plain"))
                try:
                    self.send_response(200 if self.path in host.files else 404)
                    self.send_header("Content-Type", mime)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server gave up first (the /slow case): that is the point

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def put(self, path: str, body: bytes, mime: str) -> str:
        self.files[path] = (body, mime)
        return self.base + path


@pytest.fixture(scope="module")
def media_host() -> Iterator[MediaHost]:
    host = MediaHost()
    thread = threading.Thread(target=host.httpd.serve_forever, daemon=True)
    thread.start()
    yield host
    host.httpd.shutdown()
    host.httpd.server_close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[Server]:
    env = {
        "OPENIMAGINE_ALLOWED_NETWORKS": "127.0.0.1/32",
        "OPENIMAGINE_INPUTS__FETCH_TIMEOUT_S": "1.5",
    }
    server = Server(tmp_path_factory.mktemp("inputs") / "data", checkpoint=tiny_checkpoint, env=env)
    yield server.start()
    server.stop()


def video_task(**fields: Any) -> dict[str, Any]:
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL,
        "positivePrompt": "the same scene at dusk",
        "includeCost": True,
    }
    task.update(fields)
    return task


def probe_item(server: Server, item: dict[str, Any], dest: Path) -> tuple[dict, dict]:
    info = ffprobe(server.download(item["videoURL"], dest))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert audio["channels"] == 2 and audio["codec_name"] == "aac"
    return video, audio


def test_i2v_with_an_image_uploaded_through_the_legacy_sdk(srv: Server, tmp_path: Path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes(640, 480))  # a 4:3 photo
    out = run_sdk(LEGACY, "legacy_i2v.py", srv, OI_IMAGE=str(photo), OI_RESOLUTION="720p")
    [video] = out["videos"]
    assert video["status"] == "success"
    assert video["cost"] == pytest.approx(0.072)  # 1 s at 720p + the image input
    info = ffprobe(srv.download(video["videoURL"], tmp_path / "i2v.mp4"))
    [v] = streams(info, "video")
    assert (v["width"], v["height"], int(v["nb_read_packets"])) == (960, 720, 24)


def test_i2v_portrait_phone_shot_as_a_data_uri(srv: Server, tmp_path: Path):
    # Stored 848x480 with EXIF "rotate 90°": a portrait photo, so 480p gives 480x848.
    image = data_uri(rotated_jpeg(848, 480), "image/jpeg")
    task = video_task(duration=1, inputs={"frameImages": [{"image": image, "frame": "first"}]})
    assert srv.post([task]).status_code == 200
    [item] = srv.poll(task["taskUUID"])["data"]
    assert item["cost"] == pytest.approx(0.052)
    video, _ = probe_item(srv, item, tmp_path / "p.mp4")
    assert (video["width"], video["height"]) == (480, 848)


@pytest.mark.parametrize("form", ["uuid", "url", "data_uri", "base64"])
def test_every_image_form_is_accepted(srv: Server, media_host: MediaHost, form: str):
    png = image_bytes(480, 480, seed=hash(form) % 1000)
    if form == "uuid":
        upload = srv.post(
            [
                {
                    "taskType": "imageUpload",
                    "taskUUID": video_task()["taskUUID"],
                    "image": png_uri(png),
                }
            ]
        ).json()["data"][0]
        value = upload["imageUUID"]
    elif form == "url":
        value = media_host.put(f"/{form}.png", png, "image/png")
    elif form == "data_uri":
        value = png_uri(png)
    else:
        value = base64.b64encode(png).decode()
    task = video_task(duration=1, inputs={"frameImages": [value]})
    ack = srv.post([task])
    assert ack.status_code == 200, ack.text
    body = srv.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()
    assert body["data"][0]["status"] in ("processing", "success")


def png_uri(png: bytes) -> str:
    return data_uri(png, "image/png")


@pytest.mark.timeout(400)  # a 2 s video-to-video on a shared 2-core CPU
def test_v2v_from_a_url_keeps_length_and_aspect(srv: Server, media_host: MediaHost, tmp_path: Path):
    source = write_video(tmp_path / "src.mp4", frames=60, fps=30, width=320, height=240)
    url = media_host.put("/src.mp4", source.read_bytes(), "video/mp4")
    task = video_task(inputs={"video": url})
    assert srv.post([task]).status_code == 200
    [item] = srv.poll(task["taskUUID"], timeout=180)["data"]
    # 2 s of 4:3 at 480p: 640x480, 48 frames at 24 fps; 2 s out + 2 s of input video.
    assert item["cost"] == pytest.approx(0.12)
    video, audio = probe_item(srv, item, tmp_path / "v2v.mp4")
    assert (video["width"], video["height"], int(video["nb_read_packets"])) == (640, 480, 48)
    assert abs(float(audio["duration"]) - 2.0) < 0.03


@pytest.mark.timeout(400)
def test_v2v_from_reference_videos_with_a_duration(
    srv: Server, media_host: MediaHost, tmp_path: Path
):
    source = write_video(
        tmp_path / "src.webm", frames=90, fps=30, width=480, height=270, codec="libvpx-vp9"
    )
    url = media_host.put("/src.webm", source.read_bytes(), "video/webm")
    task = video_task(duration=2, inputs={"referenceVideos": [url]})
    assert srv.post([task]).status_code == 200
    [item] = srv.poll(task["taskUUID"], timeout=180)["data"]
    assert item["cost"] == pytest.approx(0.13)  # 2 s out + 3 s of input video
    video, _ = probe_item(srv, item, tmp_path / "ref.mp4")
    assert (video["width"], video["height"], int(video["nb_read_packets"])) == (848, 480, 48)


def _bad_inputs(media_host: MediaHost, tmp_path: Path) -> list[tuple[dict, str, str]]:
    """(inputs, error code, parameter) for each broken input."""
    truncated = image_bytes(64, 64)[:-40]
    text = media_host.put("/notes.mp4", b"this is not a video\n" * 50, "video/mp4")
    long = write_video(
        tmp_path / "long.mp4", frames=3, fps=24, width=64, height=64, last_pts_s=7200
    )
    frame = "inputs.frameImages"
    return [
        ({"frameImages": [media_host.base + "/missing"]}, "mediaFetchFailed", frame),
        ({"frameImages": [media_host.base + "/slow"]}, "mediaFetchFailed", frame),
        ({"frameImages": ["http://10.0.0.1/photo.png"]}, "mediaFetchBlocked", frame),
        ({"frameImages": [media_host.base + "/to-private"]}, "mediaFetchBlocked", frame),
        ({"frameImages": [png_uri(truncated)]}, "invalidImage", frame),
        ({"frameImages": [png_uri(huge_png_header())]}, "imageTooLarge", frame),
        ({"frameImages": ["data:image/png;base64,@@not base64@@"]}, "invalidBase64", frame),
        ({"frameImages": ["6f0c5a9e-1d0b-4c3e-9a57-0c2b7f1e4d11"]}, "mediaNotFound", frame),
        ({"video": text}, "invalidVideo", "inputs.video"),
        ({"video": data_uri(long.read_bytes(), "video/mp4")}, "videoTooLong", "inputs.video"),
        (
            {"referenceImages": ["6f0c5a9e-1d0b-4c3e-9a57-0c2b7f1e4d11"]},
            "mediaNotFound",
            "inputs.referenceImages[0]",
        ),
    ]


@pytest.mark.timeout(300)
def test_bad_inputs_are_refused_naming_the_parameter(
    srv: Server, media_host: MediaHost, tmp_path: Path
):
    for inputs, code, parameter in _bad_inputs(media_host, tmp_path):
        fields: dict[str, Any] = {"duration": 2 if "video" in inputs else 1, "inputs": inputs}
        if "referenceImages" in inputs:
            fields.update(width=480, height=480)
        task = video_task(**fields)
        r = srv.post([task])
        assert r.status_code in (400, 404), (code, r.text)
        [error] = r.json()["errors"]
        assert (error["code"], error["parameter"]) == (code, parameter), error
        assert error["taskUUID"] == task["taskUUID"] and error["message"]
        # Nothing was stored, and the server keeps serving.
        gone = srv.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        assert gone.json()["errors"][0]["code"] == "taskNotFound"
    assert srv.post([{"taskType": "ping", "ping": True}]).status_code == 200
    assert httpx.get(srv.base + "/ready", timeout=5).status_code == 200  # no worker crashed


def test_a_video_by_media_uuid_or_by_an_earlier_result(srv: Server, tmp_path: Path):
    clip = write_video(tmp_path / "c.mp4", frames=48, fps=24, width=320, height=240)
    stored = srv.post(
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": str(uuid.uuid4()),
                "operation": "upload",
                "media": data_uri(clip.read_bytes(), "video/mp4"),
            }
        ]
    ).json()["data"][0]
    earlier = video_task(width=480, height=480, duration=1)
    srv.post([earlier])
    [result] = srv.poll(earlier["taskUUID"])["data"]
    for value in (stored["mediaUUID"], result["videoUUID"]):
        task = video_task(duration=2, inputs={"video": value})
        ack = srv.post([task])
        assert ack.status_code == 200, ack.text
        srv.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])


def test_a_results_url_from_this_server_is_an_input_as_it_is(server: Server, tmp_path: Path):
    # The default server refuses loopback URLs (a guard against requests to internal
    # services), yet a client chaining edits passes the previous result's `videoURL`: a URL
    # this server signed names a file it holds, so nothing is fetched.
    earlier = video_task(width=480, height=480, duration=1)
    server.post([earlier])
    [result] = server.poll(earlier["taskUUID"])["data"]
    task = video_task(inputs={"video": result["videoURL"]})
    ack = server.post([task])
    assert ack.status_code == 200, ack.text
    [item] = server.poll(task["taskUUID"])["data"]
    assert item["status"] == "success"
    video, _ = probe_item(server, item, tmp_path / "chained.mp4")
    assert (video["width"], video["height"], int(video["nb_read_packets"])) == (480, 480, 24)
    # A forged signature is just a loopback URL, which the guard refuses.
    forged = result["videoURL"].replace("sig=", "sig=x")
    refused = server.post([video_task(inputs={"video": forged})])
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["parameter"] == "inputs.video"

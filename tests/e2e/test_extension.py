"""Video extension on a real server with the tiny LTX-2 weights, through the xAI door and as a
Runware field (`inputs.extendVideo`): the output is the input followed by the continuation,
sound included, at the input's size and priced as documented; extensions chain."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from openimagine.media.audio import read_audio
from tests.helpers import Server, ffprobe, streams
from tests.media_factory import data_uri, write_video

# Each test makes two or three clips one after another.
pytestmark = pytest.mark.timeout(300)


def _submit(server: Server, route: str, body: dict[str, Any]) -> str:
    response = httpx.post(
        f"{server.base}/v1/videos/{route}",
        json={"model": "grok-imagine-video", **body},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["request_id"])


def _done(server: Server, request_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{server.base}/v1/videos/{request_id}",
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=10,
        )
        body = response.json()
        if body["status"] != "pending":
            assert response.status_code == 200 and body["status"] == "done", body
            return dict(body)
        assert response.status_code == 202
        time.sleep(0.5)
    raise AssertionError(f"{request_id} did not finish in {timeout} s")


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _probe(server: Server, done: dict[str, Any], dest: Path) -> tuple[Path, dict, dict]:
    path = server.download(done["video"]["url"], dest)
    info = ffprobe(path)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    return path, video, audio


def test_an_extension_is_the_input_then_its_continuation_and_extensions_chain(
    server: Server, tmp_path: Path
) -> None:
    first = _done(server, _submit(server, "generations", {
        "prompt": "waves on a beach", "duration": 2, "aspect_ratio": "1:1", "resolution": "480p",
    }))  # fmt: skip
    source, _, _ = _probe(server, first, tmp_path / "source.mp4")

    # The earlier result's own URL: this server's signed URLs are inputs as they are.
    extended = _done(server, _submit(server, "extensions", {
        "prompt": "the tide comes in", "video": {"url": first["video"]["url"]}, "duration": 2,
    }))  # fmt: skip
    out, video, audio = _probe(server, extended, tmp_path / "extended.mp4")
    assert (video["width"], video["height"], int(video["nb_read_packets"])) == (480, 480, 96)
    assert audio["channels"] == 2 and abs(float(audio["duration"]) - 4.0) < 0.1
    assert extended["video"]["duration"] == 4
    # 4 s of output at 480p ($0.05/s) and 2 s of input video ($0.01/s)
    assert extended["usage"]["cost_in_usd_ticks"] == Decimal("0.22") * 10**10

    # The first two seconds are the input, re-encoded at the output's quality.
    # The tiny weights' frames are noise, which a codec keeps worst: judge the re-encode's
    # error against how much the clip changes from one frame to the next.
    before, after = _frames(source).astype(int), _frames(out).astype(int)
    reencode = np.abs(after[:48] - before).mean()
    motion = np.abs(before[1:] - before[:-1]).mean()
    assert reencode < 8 and reencode < motion / 3, (reencode, motion)
    rate = 48_000
    sound_in, sound_out = read_audio(source, rate), read_audio(out, rate)
    head = sound_out[:, : sound_in.shape[1] - rate // 50]  # up to the 10 ms fade at the seam
    same = sound_in[:, : head.shape[1]]
    assert np.corrcoef(head.ravel(), same.ravel())[0, 1] > 0.95

    chained = _done(server, _submit(server, "extensions", {
        "prompt": "night falls", "video": {"url": extended["video"]["url"]}, "duration": 2,
    }))  # fmt: skip
    _, video, audio = _probe(server, chained, tmp_path / "chained.mp4")
    assert int(video["nb_read_packets"]) == 144 and abs(float(audio["duration"]) - 6.0) < 0.1
    assert chained["usage"]["cost_in_usd_ticks"] == Decimal("0.34") * 10**10


def test_an_extension_refuses_what_it_cannot_do(server: Server, tmp_path: Path) -> None:
    def refused(body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{server.base}/v1/videos/extensions",
            json={"prompt": "more", **body},
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=30,
        )
        assert response.status_code == 400, response.text
        return dict(response.json()["error"])

    short = write_video(tmp_path / "short.mp4", frames=36, fps=24, width=320, height=240)
    too_short = {"url": data_uri(short.read_bytes(), "video/mp4")}  # 1.5 s: 2-30 s are taken
    error = refused({"video": too_short, "duration": 2})
    assert error["param"] == "video" and error["code"] == "unsupported_duration", error
    video = {"file_id": "aac49721-1964-481a-ae78-8a4e29b91402"}
    assert refused({"video": video, "duration": 11})["param"] == "duration"
    assert refused({"video": video, "duration": 1})["param"] == "duration"
    assert refused({"video": video, "aspect_ratio": "16:9"})["param"] == "aspect_ratio"
    assert refused({})["param"] == "video"


def test_a_runware_task_extends_an_earlier_result_by_its_video_uuid(
    server: Server, tmp_path: Path
) -> None:
    earlier = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "xai:grok-imagine@video",
        "positivePrompt": "a kite in the wind",
        "width": 640,
        "height": 480,
        "duration": 2,
    }
    server.post([earlier])
    [first] = server.poll(earlier["taskUUID"])["data"]
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "xai:grok-imagine@video",
        "positivePrompt": "the kite climbs",
        "duration": 2,
        "includeCost": True,
        "inputs": {"extendVideo": first["videoUUID"]},
    }
    ack = server.post([task])
    assert ack.status_code == 200, ack.text
    [item] = server.poll(task["taskUUID"])["data"]
    assert item["status"] == "success"
    assert item["cost"] == 4 * 0.05 + 2 * 0.01  # 4 s out at 480p, 2 s of input video
    info = ffprobe(server.download(item["videoURL"], tmp_path / "kite.mp4"))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["width"], video["height"], int(video["nb_read_packets"])) == (640, 480, 96)
    assert abs(float(audio["duration"]) - 4.0) < 0.1
    # The seconds added are 2-10: 1 is refused, naming `duration`; and the source is one.
    short = server.post([{**task, "taskUUID": str(uuid.uuid4()), "duration": 1}])
    assert short.json()["errors"][0]["parameter"] == "duration"
    both = {"extendVideo": first["videoUUID"], "video": first["videoUUID"]}
    mixed = server.post([{**task, "taskUUID": str(uuid.uuid4()), "inputs": both}])
    assert mixed.json()["errors"][0]["parameter"] == "inputs.extendVideo"

"""Text-to-video over REST against a real server: the clip, its audio, seeds, cost, URLs."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx

from tests.helpers import Server, ffprobe, streams, t2v


def test_t2v_produces_the_exact_clip_with_synchronized_stereo_audio(server: Server, tmp_path: Path):
    task = t2v(width=848, height=480, duration=2, includeCost=True, seed=42)
    ack = server.post([task])
    assert ack.status_code == 200
    # The ack echoes the task and nothing else: a videoUUID here would read as a finished result
    # to the legacy SDK.
    assert ack.json() == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    body = server.poll(task["taskUUID"])
    [item] = body["data"]
    assert item["status"] == "success" and item["taskType"] == "videoInference"
    assert item["seed"] == 42 and item["cost"] == 0.1
    uuid.UUID(item["videoUUID"])
    info = ffprobe(server.download(item["videoURL"], tmp_path / "a.mp4"))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 848, 480)
    assert int(video["nb_read_packets"]) == 48 and video["avg_frame_rate"] == "24/1"
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert abs(float(audio["duration"]) - 2.0) < 0.03
    assert "RANDOM WEIGHTS" in info["format"]["tags"]["comment"]


def test_number_results_gives_distinct_seeds_and_video_uuids(server: Server):
    task = t2v(numberResults=3, includeCost=True)
    server.post([task])
    processing = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]).json()
    # videoUUIDs are allocated at submit and stable while processing.
    early = {i["videoUUID"] for i in processing["data"]}
    body = server.poll(task["taskUUID"], n=3, timeout=180)
    items = body["data"]
    assert len(items) == 3 and {i["videoUUID"] for i in items} == early
    assert len({i["seed"] for i in items}) == 3
    assert len({i["videoURL"] for i in items}) == 3
    assert all(i["cost"] == 0.05 for i in items)  # 480p, 1 s, per result


def test_same_seed_and_request_give_the_same_bytes(server: Server, tmp_path: Path):
    digests = []
    for n in range(2):
        task = t2v(seed=7, outputQuality=60)
        server.post([task])
        [item] = server.poll(task["taskUUID"])["data"]
        data = server.download(item["videoURL"], tmp_path / f"{n}.mp4").read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
    assert digests[0] == digests[1]


def test_output_quality_changes_the_encode(server: Server, tmp_path: Path):
    sizes = []
    for q in (20, 99):
        task = t2v(seed=9, outputQuality=q)
        server.post([task])
        [item] = server.poll(task["taskUUID"])["data"]
        sizes.append(server.download(item["videoURL"], tmp_path / f"{q}.mp4").stat().st_size)
    assert sizes[1] > sizes[0] * 1.5


def test_tampered_or_expired_urls_are_refused(server: Server, tmp_path: Path):
    task = t2v(ttl=60)
    server.post([task])
    [item] = server.poll(task["taskUUID"])["data"]
    url = item["videoURL"]
    assert httpx.get(url).status_code == 200
    other = url.replace(item["videoUUID"], str(uuid.uuid4()))
    assert httpx.get(other).status_code == 403
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    longer = f"{base}?exp={int(params['exp']) + 3600}&sig={params['sig']}"
    assert httpx.get(longer).status_code == 403
    expired = f"{base}?exp=1000&sig={params['sig']}"
    assert httpx.get(expired).status_code == 403
    # ttl=60 sets the expiry about a minute after completion
    import time

    assert 0 < int(params["exp"]) - time.time() <= 61


def test_idempotent_resubmit_and_conflicting_reuse(server: Server):
    task = t2v()
    first = server.post([task])
    again = server.post([task])
    assert first.json() == again.json()
    other = {**task, "positivePrompt": "something else"}
    conflict = server.post([other])
    assert conflict.status_code == 409
    [err] = conflict.json()["errors"]
    assert err["code"] == "conflictTaskUUID" and err["taskUUID"] == task["taskUUID"]
    assert err["parameter"] == "taskUUID"
    server.poll(task["taskUUID"])


def test_auth_by_bearer_or_leading_authentication_task(server: Server):
    task = t2v()
    r = httpx.post(
        server.base + "/v1",
        json=[{"taskType": "authentication", "apiKey": server.key}, task],
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["data"] == [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]
    bad = server.post([t2v()], key="oi_wrong")
    assert bad.status_code == 401
    [err] = bad.json()["errors"]
    assert err["code"] == "invalidApiKey" and err["taskType"] == "authentication"
    assert "taskUUID" not in err
    none = httpx.post(server.base + "/v1", json=[t2v()], timeout=10)
    assert none.status_code == 401 and none.json()["errors"][0]["code"] == "missingApiKey"
    # a job is visible only to the key that made it
    server.poll(task["taskUUID"])

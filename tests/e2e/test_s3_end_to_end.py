"""Blobs in S3 through real servers (SeaweedFS as the bucket, the fixture backend as the model):
a result's videoURL is a presigned URL that downloads the MP4 straight from the bucket; a link
that outlives presigning redirects to one; an image uploaded to an API replica is the input of
a worker on another "host" (its own data directory, sharing only the store and the bucket);
and a bucket that goes away mid-task fails the task with a clear error, not a stuck lease."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import BIN, Server, ffprobe, streams, t2v
from tests.media_factory import data_uri, image_bytes
from tests.s3_server import SeaweedS3

FIXTURE = {"OPENIMAGINE_MODEL__BACKEND": "fixture"}


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


def s3_server(data_dir: Path, weed: SeaweedS3, prefix: str, **options) -> Server:
    """A fixture-backend server whose blobs live under `prefix` in the bucket."""
    env = {**FIXTURE, **weed.server.env(prefix), **options.pop("env", {})}
    srv = Server(data_dir, checkpoint=data_dir / "unused", env=env, **options)
    srv.env.pop("OPENIMAGINE_MODEL__CHECKPOINT")
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, weed: SeaweedS3) -> Iterator[Server]:
    srv = s3_server(tmp_path_factory.mktemp("s3srv") / "data", weed, "e2e").start()
    yield srv
    srv.stop()


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def objects(weed: SeaweedS3, prefix: str) -> list[str]:
    listed = weed.client().list_objects_v2(Bucket=weed.bucket, Prefix=prefix + "/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_result_downloads_straight_from_the_bucket(server: Server, weed: SeaweedS3, tmp_path):
    task = t2v(width=848, height=480, duration=1, ttl=3600)
    assert server.post([task]).status_code == 200
    [item] = server.poll(task["taskUUID"], timeout=60)["data"]
    assert item["status"] == "success"
    url = urlsplit(item["videoURL"])
    assert f"{url.scheme}://{url.netloc}" == weed.endpoint
    assert url.path.startswith(f"/{weed.bucket}/e2e/videos/") and url.path.endswith(".mp4")
    assert int(parse_qs(url.query)["X-Amz-Expires"][0]) in range(3590, 3601)  # the task's ttl
    r = httpx.get(item["videoURL"], timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    dest = tmp_path / "r.mp4"
    dest.write_bytes(r.content)
    info = ffprobe(dest)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 848, 480)
    assert int(video["nb_read_packets"]) == 24 and audio["codec_name"] == "aac"
    assert url.path.removeprefix(f"/{weed.bucket}/") in objects(weed, "e2e")
    # Nothing is kept on the server's disk: no blobs, and no scratch files left over.
    assert files_under(server.data_dir / "blobs") == []
    assert files_under(server.data_dir / "scratch") == []


def test_a_link_past_presignings_week_redirects_to_the_bucket(server: Server, tmp_path):
    task = t2v(duration=1, ttl=10 * 24 * 3600)
    server.post([task])
    [item] = server.poll(task["taskUUID"], timeout=60)["data"]
    assert item["videoURL"].startswith(server.base + "/media/videos/")
    hop = httpx.get(item["videoURL"], timeout=30)
    assert hop.status_code == 307 and hop.headers["cache-control"] == "no-store"
    location = urlsplit(hop.headers["location"])
    assert int(parse_qs(location.query)["X-Amz-Expires"][0]) <= 3600
    followed = httpx.get(item["videoURL"], follow_redirects=True, timeout=30)
    assert followed.status_code == 200 and followed.headers["content-type"] == "video/mp4"
    (tmp_path / "long.mp4").write_bytes(followed.content)
    info = ffprobe(tmp_path / "long.mp4")
    assert streams(info, "video")[0]["width"] == 480
    forged = item["videoURL"].replace("sig=", "sig=x")
    assert httpx.get(forged, timeout=10).status_code == 403


def upload_png(server: Server, png: bytes) -> dict:
    task = {
        "taskType": "imageUpload",
        "taskUUID": t2v()["taskUUID"],
        "image": data_uri(png, "image/png"),
    }
    response = server.post([task])
    assert response.status_code == 200, response.text
    return response.json()["data"][0]


@pytest.mark.timeout(180)
def test_an_upload_to_one_replica_is_an_input_for_a_worker_on_another_host(
    weed: SeaweedS3, tmp_path: Path
):
    store = f"sqlite:///{tmp_path / 'shared.db'}"  # stands in for PostgreSQL
    api = s3_server(tmp_path / "api", weed, "fleet", workers=0, store_url=store).start()
    worker_dir = tmp_path / "gpu-host"
    env = {**os.environ, **FIXTURE, **weed.server.env()}
    del env["OPENIMAGINE_BLOBS__URL"]  # given on the command line instead
    cmd = [str(BIN / "openimagine"), "worker", "--data-dir", str(worker_dir), "--store", store]
    cmd += ["--blobs", f"s3://{weed.bucket}/fleet", "--count", "1"]
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        api.wait_ready()
        png = image_bytes(320, 240)
        upload = upload_png(api, png)
        # Kept 30 days after its last use: past presigning, so the API's link redirects.
        assert upload["imageURL"].startswith(api.base + "/media/inputs/")
        fetched = httpx.get(upload["imageURL"], follow_redirects=True, timeout=10)
        assert fetched.content == png and fetched.url.host == "127.0.0.1"
        assert str(fetched.url).startswith(weed.endpoint)
        assert any(k.startswith("fleet/inputs/") for k in objects(weed, "fleet"))
        task = t2v(duration=1, inputs={"frameImages": [upload["imageUUID"]]})
        del task["width"], task["height"]  # the image's 4:3 at 480p: 640x480
        assert api.post([task]).status_code == 200
        [item] = api.poll(task["taskUUID"], timeout=90)["data"]
        assert item["status"] == "success" and item["videoURL"].startswith(weed.endpoint)
        info = ffprobe(api.download(item["videoURL"], tmp_path / "i2v.mp4"))
        [video] = streams(info, "video")
        assert (video["width"], video["height"]) == (640, 480)
        for host in (api.data_dir, worker_dir):
            assert files_under(host / "blobs") == [] and files_under(host / "scratch") == []
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        api.stop()


@pytest.mark.timeout(180)
def test_a_bucket_gone_mid_task_fails_it_with_a_storage_error(tmp_path: Path):
    weed = SeaweedS3(tmp_path / "weed").start()
    env = {"OPENIMAGINE_MODEL__FIXTURE_SECONDS": "6", "OPENIMAGINE_BLOBS__S3_RETRY_S": "2"}
    srv = s3_server(tmp_path / "data", weed, "outage", env=env)
    try:
        srv.start()
        task = t2v(duration=1)
        assert srv.post([task]).status_code == 200
        srv.wait_running(task["taskUUID"])
        weed.stop()  # the upload that follows finds no server
        body = srv.poll(task["taskUUID"], timeout=60)
        [error] = body["errors"]
        assert error["code"] == "storageError" and error["status"] == "error"
        assert "object store" in error["message"] and "127.0.0.1" not in error["message"]
        # The lease is released with the failure: the worker lives on, ready for more.
        assert httpx.get(srv.base + "/ready", timeout=5).status_code == 200
        assert files_under(srv.data_dir / "scratch") == []
    finally:
        srv.stop()
        weed.stop()

"""The Python client (`openimagine.Client`, `AsyncClient`) against a real server: submit,
wait with progress, download, cancel, and errors as `ClientError` with code and parameter."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image

from openimagine import AsyncClient, Client, ClientError
from openimagine.client import ServerUnreachable, TaskStatus
from tests.helpers import Server, ffprobe, free_port, streams


def check_clip(path: Path) -> None:
    """A 480x480, 1 s clip: H.264 at 24 fps and stereo AAC."""
    info = ffprobe(path)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 480, 480)
    assert int(video["nb_read_packets"]) == 24
    assert audio["codec_name"] == "aac" and audio["channels"] == 2


@pytest.mark.timeout(240)
def test_submit_wait_with_progress_and_download(server: Server, tmp_path: Path):
    seen: list[TaskStatus] = []
    with Client(server.base, server.key) as client:
        sub = client.submit("a lighthouse in a storm", size="480x480", duration=1, seed=42)
        assert str(uuid.UUID(sub.task_uuid)) == sub.task_uuid and sub.number_results == 1
        done = client.wait(sub, timeout=220, poll_interval=0.2, on_progress=seen.append)
        assert done.done and done.status == "success" and done.task_uuid == sub.task_uuid
        [video] = done.videos
        assert video.seed == 42 and video.cost is None  # cost only with include_cost
        assert video.video_url and uuid.UUID(video.video_uuid or "")
        downloaded: list[int] = []
        path = client.download(
            video, tmp_path / "a.mp4", on_progress=lambda n, _t: downloaded.append(n)
        )
        check_clip(path)
        assert downloaded[-1] == path.stat().st_size
        # into a directory: named after the result
        again = client.download(video.video_url, tmp_path)
        assert again == tmp_path / f"{video.video_uuid}.mp4"
        assert again.read_bytes() == path.read_bytes()
        # polling a finished task reads the same result
        assert client.status(sub.task_uuid).videos == done.videos
    progress = [s.progress for s in seen]
    assert seen[0].status == "processing"
    assert progress == sorted(progress) and progress[-1] == 100
    assert all(s.status == "processing" for s in seen[:-1])


def test_cancel_turns_the_task_into_a_task_cancelled_error(server: Server):
    with Client(server.base, server.key) as client:
        sub = client.submit("a long storm", size="480x480", duration=3, include_cost=True)
        assert client.cancel(sub) in ("canceled", "running")
        with pytest.raises(ClientError) as caught:
            client.wait(sub, timeout=60, poll_interval=0.2)
        assert caught.value.code == "taskCancelled" and caught.value.task_uuid == sub.task_uuid
        final = client.wait(sub.task_uuid, timeout=5, raise_on_error=False)
        assert final.status == "error" and final.videos == ()
        assert [e.code for e in final.errors] == ["taskCancelled"]


def test_server_errors_raise_client_error_with_code_and_parameter(server: Server):
    with Client(server.base, server.key) as client:
        with pytest.raises(ClientError) as caught:
            client.submit("a lighthouse", size="1000x1000", task_uuid=(tid := str(uuid.uuid4())))
        err = caught.value
        assert (err.code, err.parameter, err.status_code) == ("unsupportedDimensions", "width", 400)
        assert err.task_uuid == tid and "1000x1000" in err.message
        assert "unsupportedDimensions" in str(err) and "width" in str(err)
        with pytest.raises(ClientError) as caught:
            client.submit("a lighthouse", size="480x480", duration=99)
        assert (caught.value.code, caught.value.parameter) == ("invalidDuration", "duration")
        unknown = str(uuid.uuid4())
        with pytest.raises(ClientError) as caught:
            client.status(unknown)
        assert (caught.value.code, caught.value.parameter) == ("taskNotFound", "taskUUID")
        with pytest.raises(ClientError) as caught:
            client.cancel(unknown)
        assert caught.value.code == "taskNotFound" and caught.value.status_code == 404
    with Client(server.base, "oi_wrong") as client, pytest.raises(ClientError) as caught:
        client.status(unknown)
    assert (caught.value.code, caught.value.status_code) == ("invalidApiKey", 401)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with Client(nowhere, server.key) as client, pytest.raises(ServerUnreachable) as caught:
        client.submit("a lighthouse", size="480x480")
    assert caught.value.code == "serverUnreachable" and nowhere in str(caught.value)


def test_local_mistakes_fail_before_anything_is_sent(server: Server, tmp_path: Path):
    with Client(server.base, server.key) as client:
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            client.submit("a lighthouse", size="wide")
        with pytest.raises(FileNotFoundError, match="no such file"):
            client.submit("a lighthouse", image=tmp_path / "missing.png")


def test_a_local_image_is_sent_as_a_data_uri_and_urls_pass_through(server: Server, tmp_path: Path):
    png = tmp_path / "first.png"
    Image.new("RGB", (480, 480), (200, 40, 40)).save(png)
    with Client(server.base, server.key) as client:
        sub = client.submit("a red room", image=png, resolution="480p", duration=1)
        [frame] = sub.task["inputs"]["frameImages"]
        assert frame.startswith("data:image/png;base64,")
        client.cancel(sub)
        buf = io.BytesIO()
        Image.new("RGB", (480, 480)).save(buf, format="JPEG")
        raw = client.submit("a dark room", image=buf.getvalue(), resolution="480p", duration=1)
        assert raw.task["inputs"]["frameImages"][0].startswith("data:image/jpeg;base64,")
        client.cancel(raw)
    url = "https://example.com/frame.png"
    from openimagine.client import build_task

    assert build_task("x", image=url, resolution="720p")["inputs"] == {"frameImages": [url]}


@pytest.mark.timeout(240)
async def test_async_client_submits_waits_and_downloads(server: Server, tmp_path: Path):
    seen: list[int] = []

    async def on_progress(status: TaskStatus) -> None:
        seen.append(status.progress)

    async with AsyncClient(server.base, server.key) as client:
        sub = await client.submit(
            "a lighthouse in a storm", width=480, height=480, duration=1, include_cost=True
        )
        done = await client.wait(sub, timeout=220, poll_interval=0.2, on_progress=on_progress)
        [video] = done.videos
        assert video.cost == 0.05 and done.cost == 0.05
        check_clip(await client.download(video, tmp_path / "b.mp4"))
        assert seen == sorted(seen) and seen[-1] == 100
        with pytest.raises(ClientError) as caught:
            await client.submit("a lighthouse", size="480x480", output_format="GIF")
        assert (caught.value.code, caught.value.parameter) == (
            "invalidOutputFormat",
            "outputFormat",
        )
        cancelled = await client.submit("a storm", size="480x480", duration=3)
        await client.cancel(cancelled)
        with pytest.raises(ClientError) as caught:
            await client.wait(cancelled, timeout=60, poll_interval=0.2)
        assert caught.value.code == "taskCancelled"

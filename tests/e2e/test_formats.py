"""Each output format through the real server, probed by ffprobe: container, codecs, size,
frame rate, frame count, duration and the stereo audio track."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, ffprobe, streams, t2v

FORMATS = {
    # outputFormat: (ffprobe format_name, video codec, audio codec, extension, content type)
    "MP4": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac", ".mp4", "video/mp4"),
    "WEBM": ("matroska,webm", "vp9", "opus", ".webm", "video/webm"),
    "MOV": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac", ".mov", "video/quicktime"),
}


def _seconds(stream: dict[str, object]) -> float:
    """MP4/MOV carry a stream duration; Matroska a DURATION tag like 00:00:02.000000000."""
    if "duration" in stream:
        return float(str(stream["duration"]))
    tags = stream["tags"]
    assert isinstance(tags, dict)
    hours, minutes, seconds = str(tags["DURATION"]).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_format_gives_that_container_and_codecs(server: Server, tmp_path: Path, fmt: str):
    container, vcodec, acodec, ext, mime = FORMATS[fmt]
    task = t2v(width=480, height=848, duration=2, outputFormat=fmt, outputQuality=60)
    server.post([task])
    [item] = server.poll(task["taskUUID"])["data"]
    url = item["videoURL"]
    assert httpx.URL(url).path.endswith(ext)
    response = httpx.get(url, timeout=30)
    assert response.headers["content-type"] == mime
    path = tmp_path / f"clip{ext}"
    path.write_bytes(response.content)

    info = ffprobe(path)
    assert info["format"]["format_name"] == container
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == (vcodec, 480, 848)
    assert int(video["nb_read_packets"]) == 48 and video["avg_frame_rate"] == "24/1"
    assert abs(_seconds(video) - 2.0) < 0.002
    assert (audio["codec_name"], audio["channels"], int(audio["sample_rate"])) == (
        acodec,
        2,
        48000,
    )
    assert abs(_seconds(audio) - 2.0) < 0.03

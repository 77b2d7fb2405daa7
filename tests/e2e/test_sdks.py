"""The official Runware Python SDKs, unchanged, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, Server, ffprobe, streams

SDK = Path(__file__).parent / "sdk"
LEGACY = ROOT / ".venv-sdk" / "runware-legacy" / "bin" / "python"
CURRENT = ROOT / ".venv-sdk" / "runware-sdk" / "bin" / "python"


def run_sdk(python: Path, script: str, server: Server, **env: str) -> dict:
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make sdk-envs` (make test does)")
    out = subprocess.run(
        [str(python), str(SDK / script)],
        env={
            **os.environ,
            "OI_KEY": server.key,
            "OI_WS_URL": f"ws://127.0.0.1:{server.port}/v1",
            "OI_HTTP_URL": f"{server.base}/v1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_clip(server: Server, url: str, dest: Path, width: int, height: int) -> None:
    info = ffprobe(server.download(url, dest))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", width, height)
    assert int(video["nb_read_packets"]) == 24
    assert audio["codec_name"] == "aac" and audio["channels"] == 2


def test_legacy_runware_sdk_over_websocket(server: Server, tmp_path: Path):
    out = run_sdk(LEGACY, "legacy_t2v.py", server)
    # the submit acknowledgement is not mistaken for a result
    assert out["ack"] == "IAsyncTaskResponse"
    [video] = out["videos"]
    assert video["status"] == "success" and video["taskUUID"] == out["taskUUID"]
    assert video["cost"] == 0.05
    check_clip(server, video["videoURL"], tmp_path / "legacy.mp4", 480, 480)


@pytest.mark.parametrize("transport", ["websocket", "rest"])
def test_runware_sdk(server: Server, tmp_path: Path, transport: str):
    out = run_sdk(CURRENT, "sdk_t2v.py", server, OI_TRANSPORT=transport)
    results = out["results"]
    assert len(results) == 2
    assert len({r["videoUUID"] for r in results}) == 2
    for i, r in enumerate(results):
        assert r["status"] == "success" and r["cost"] == 0.05
        check_clip(server, r["videoURL"], tmp_path / f"{transport}{i}.mp4", 848, 480)

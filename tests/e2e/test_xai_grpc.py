"""xAI's Python SDK (`xai-sdk`, which reaches video only over gRPC), unchanged, against the
server's gRPC door (`serve --grpc-port`) on 127.0.0.1: every clip probed with ffprobe, every
cost in xAI's ticks equal to the model card's price, every error a gRPC status naming the
field."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, Server, ffprobe, free_port, openimagine, streams, user_env
from tests.media_factory import image_bytes, write_video

SCRIPT = Path(__file__).parent / "sdk" / "xai_grpc.py"
PYTHON = ROOT / ".venv-sdk" / "xai-sdk" / "bin" / "python"
TICKS = 10**10  # per USD
FPS = 24


class GrpcServer(Server):
    """`openimagine serve --grpc-port N`: the shared server has the door off, the default."""

    def __init__(self, data_dir: Path, *, checkpoint: Path, port: int = 0, **kw: Any) -> None:
        self.grpc_port = port or free_port()
        args = ["--grpc-port", str(self.grpc_port)]
        super().__init__(data_dir, checkpoint=checkpoint, args=args, **kw)
        self.grpc_host = f"127.0.0.1:{self.grpc_port}"


@pytest.fixture(scope="module")
def grpc_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path
) -> Iterator[GrpcServer]:
    srv = GrpcServer(tmp_path_factory.mktemp("grpc") / "data", checkpoint=tiny_checkpoint)
    srv.start()
    yield srv
    srv.stop()


def run_sdk(server: GrpcServer, scenario: str, **env: str) -> Any:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: run `make sdk-envs` (make test does)")
    out = subprocess.run(
        [str(PYTHON), str(SCRIPT), scenario],
        env={
            **os.environ,
            "OI_KEY": server.key,
            "OI_GRPC_HOST": server.grpc_host,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_clip(server: Server, url: str, dest: Path, size: tuple[int, int], seconds: int) -> None:
    info = ffprobe(server.download(url, dest))
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", *size)
    assert int(video["nb_read_packets"]) == FPS * seconds
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert abs(float(info["format"]["duration"]) - seconds) < 0.1


def check_done(out: dict[str, Any], seconds: int, usd: str) -> None:
    assert out["model"] == "grok-imagine-video"
    assert out["duration"] == seconds and out["respect_moderation"] is True
    # The card's price, exactly, in xAI's units (1 USD = 10^10 ticks).
    assert out["ticks"] == int(float(usd) * TICKS)
    assert out["cost_usd"] == pytest.approx(float(usd))


def test_text_to_video_at_an_aspect_ratio_and_resolution(grpc_server: GrpcServer, tmp_path: Path):
    args = {"prompt": "a lighthouse", "duration": 1, "aspect_ratio": "16:9", "resolution": "480p"}
    out = run_sdk(grpc_server, "generate", OI_ARGS=json.dumps(args))
    check_done(out, 1, "0.05")
    check_clip(grpc_server, out["url"], tmp_path / "t2v.mp4", (848, 480), 1)


def test_image_to_video_from_a_data_url(grpc_server: GrpcServer, tmp_path: Path):
    image = tmp_path / "frame.png"
    image.write_bytes(image_bytes(160, 120))  # 4:3
    out = run_sdk(grpc_server, "image_to_video", OI_IMAGE=str(image))
    check_done(out, 1, "0.052")  # 1 s at 480p, plus the image input
    check_clip(grpc_server, out["url"], tmp_path / "i2v.mp4", (640, 480), 1)


def test_an_edit_of_a_video_sent_as_a_data_url(grpc_server: GrpcServer, tmp_path: Path):
    source = write_video(tmp_path / "in.mp4", frames=FPS, fps=FPS, width=480, height=480)
    out = run_sdk(grpc_server, "edit", OI_VIDEO=str(source))
    # The input's size and length; its second of input video is priced too.
    check_done(out, 1, "0.06")
    check_clip(grpc_server, out["url"], tmp_path / "edit.mp4", (480, 480), 1)


def test_an_extension_is_the_input_then_two_more_seconds(grpc_server: GrpcServer, tmp_path: Path):
    source = write_video(tmp_path / "in.mp4", frames=2 * FPS, fps=FPS, width=480, height=480)
    out = run_sdk(grpc_server, "extend", OI_VIDEO=str(source))
    # 4 s of output at 480p, plus 2 s of input video.
    check_done(out, 4, "0.22")
    check_clip(grpc_server, out["url"], tmp_path / "extended.mp4", (480, 480), 4)


def test_the_async_client_at_the_default_resolution(grpc_server: GrpcServer, tmp_path: Path):
    out = run_sdk(grpc_server, "async")
    check_done(out, 1, "0.05")
    check_clip(grpc_server, out["url"], tmp_path / "async.mp4", (480, 848), 1)


@pytest.fixture(scope="module")
def errors(grpc_server: GrpcServer) -> dict[str, list[str]]:
    result: dict[str, list[str]] = run_sdk(grpc_server, "errors")
    return result


def test_a_bad_key_is_unauthenticated(errors: dict[str, list[str]]):
    assert errors["bad_key"] == ["UNAUTHENTICATED", "Invalid API key."]


@pytest.mark.parametrize(
    ("case", "field"),
    [("bad_duration", "duration"), ("bad_resolution", "resolution"), ("unknown_model", "model")],
)
def test_invalid_arguments_name_the_field(errors: dict[str, list[str]], case: str, field: str):
    code, details = errors[case]
    assert code == "INVALID_ARGUMENT"
    assert field in details, details


def test_an_unknown_request_id_is_not_found(errors: dict[str, list[str]]):
    assert errors["unknown_request"][0] == "NOT_FOUND"


def test_an_extension_longer_than_ten_seconds_is_refused(errors: dict[str, list[str]]):
    code, details = errors["extend_too_long"]
    assert code == "INVALID_ARGUMENT" and "duration" in details, details


def test_plaintext_grpc_beyond_loopback_is_refused(tmp_path: Path):
    run = openimagine(
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104
        "--grpc-port",
        str(free_port()),
        "--api-key",
        "oi_test_key",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=user_env(),
        timeout=60,
    )
    assert run.returncode == 2
    assert "Refusing to serve gRPC in plaintext" in run.stdout + run.stderr


def self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (it makes the test's TLS certificate)")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def test_tls_with_the_sdks_default_secure_channel(tmp_path: Path, tiny_checkpoint: Path):
    cert, key = self_signed(tmp_path)
    tls = {
        "OPENIMAGINE_SERVER__GRPC_TLS_CERT": str(cert),
        "OPENIMAGINE_SERVER__GRPC_TLS_KEY": str(key),
    }
    srv = GrpcServer(tmp_path / "data", checkpoint=tiny_checkpoint, workers=0, env=tls)
    try:
        srv.start()
        assert "listening on 127.0.0.1" in srv.log.read_text() and "(TLS)" in srv.log.read_text()
        out = run_sdk(srv, "tls", GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(cert))
    finally:
        srv.stop()
    assert out["request_id"] and out["status"] == "PENDING"  # no worker runs it


def test_a_busy_grpc_port_stops_the_startup(tmp_path: Path, tiny_checkpoint: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        srv = GrpcServer(tmp_path / "data", checkpoint=tiny_checkpoint, port=port, workers=0)
        try:
            with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
                srv.start()
        finally:
            srv.stop()

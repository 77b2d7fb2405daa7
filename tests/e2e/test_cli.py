"""`openimagine generate | cancel | doctor` as a user runs them: files saved and playable,
progress on stderr, one clear line for each mistake, Ctrl-C cancels, and a local server
started (and stopped) for the call when none answers."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    CLI,
    Server,
    ffprobe,
    free_port,
    one_error_line,
    openimagine,
    streams,
    t2v,
    user_env,
)

SMALL = ["--size", "480x480", "--duration", "1"]


def remote(server: Server) -> list[str]:
    return ["--server", server.base, "--api-key", server.key]


def video_of(path: Path) -> dict[str, object]:
    info = ffprobe(path)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    return video


@pytest.mark.timeout(300)
def test_generate_saves_each_video_and_shows_progress(server: Server, tmp_path: Path):
    prompt = "a lighthouse in a storm"
    run = openimagine(
        "generate",
        prompt,
        "-o",
        "storm.mp4",
        "-n",
        "2",
        "--seed",
        "5",
        *SMALL,
        *remote(server),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "saved storm.mp4 (seed 5, $0.05)",
        "saved storm-2.mp4 (seed 6, $0.05)",
    ]
    for name in ("storm.mp4", "storm-2.mp4"):
        video = video_of(tmp_path / name)
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 480, 480)
        assert video["nb_read_packets"] == "24"
    lines = run.stderr.splitlines()
    assert lines[0].startswith("task ") and str(uuid.UUID(lines[0].split()[1]))
    assert "random weights" in run.stderr
    for stage in ("generating", "downloading storm.mp4", "downloading storm-2.mp4"):
        assert stage in lines


@pytest.mark.timeout(240)
def test_format_follows_the_output_name(server: Server, tmp_path: Path):
    run = openimagine(
        "generate", "a dune", "-o", "dune.webm", *SMALL, *remote(server), cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    video = video_of_webm(tmp_path / "dune.webm")
    assert (video["codec_name"], video["width"]) == ("vp9", 480)


def video_of_webm(path: Path) -> dict[str, object]:
    info = ffprobe(path)
    [video], [audio] = streams(info, "video"), streams(info, "audio")
    assert audio["codec_name"] == "opus"
    assert info["format"]["format_name"].startswith("matroska,webm")
    return video


def test_bad_input_is_one_clear_line(server: Server, tmp_path: Path):
    missing = openimagine(
        "generate", "a lighthouse", "--image", "nope.png", *remote(server), cwd=tmp_path
    )
    assert "no such file: nope.png" in one_error_line(missing)

    size = openimagine(
        "generate", "a lighthouse", "--size", "1000x1000", *remote(server), cwd=tmp_path
    )
    line = one_error_line(size)
    assert "Unsupported dimensions 1000x1000" in line and "unsupportedDimensions" in line

    shape = openimagine("generate", "a lighthouse", "--size", "wide", *remote(server), cwd=tmp_path)
    assert "WIDTHxHEIGHT" in one_error_line(shape)

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = openimagine(
        "generate", "a lighthouse", *SMALL, "--server", nowhere, "--api-key", "k", cwd=tmp_path
    )
    assert f"Cannot reach the server at {nowhere}" in one_error_line(unreachable)

    no_key = openimagine("generate", "a lighthouse", *SMALL, "--server", server.base, cwd=tmp_path)
    assert "--api-key" in one_error_line(no_key)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_cancels_the_task(server: Server, tmp_path: Path):
    proc = subprocess.Popen(
        [CLI, "generate", "a long storm", "--size", "480x480", "--duration", "3", *remote(server)],
        cwd=tmp_path,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As at a terminal: a suite started in the background (`make test &`) ignores SIGINT,
        # and Python keeps an ignored SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("task "), first
    task_uuid = first.split()[1]
    proc.send_signal(signal.SIGINT)
    _out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"interrupted: task {task_uuid} cancelled" in rest and "Traceback" not in rest
    [error] = server.poll(task_uuid, timeout=60)["errors"]
    assert error["code"] == "taskCancelled"
    assert list(tmp_path.iterdir()) == []


def test_cancel_command(server: Server, tmp_path: Path):
    task = t2v(duration=3)
    assert server.post([task]).status_code == 200
    run = openimagine("cancel", task["taskUUID"], *remote(server), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == task["taskUUID"]
    assert run.stdout.split()[1] in ("canceled", "running")
    [error] = server.poll(task["taskUUID"], timeout=60)["errors"]
    assert error["code"] == "taskCancelled"
    unknown = openimagine("cancel", str(uuid.uuid4()), *remote(server), cwd=tmp_path)
    assert "taskNotFound" in one_error_line(unknown)


def test_doctor_reports_encoders_torch_weights_store_and_disk(tmp_path: Path):
    run = openimagine("doctor", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    report = {line.split()[1]: line for line in run.stdout.splitlines()[:-1]}
    for name in ("PyAV", "libx264", "aac", "libvpx-vp9", "libopus", "torch", "weights"):
        assert report[name].startswith("ok"), report[name]
    assert "tiny" in report["weights"] and "RANDOM weights" in report["weights"]
    assert "created on first start" in report["store"] and "GiB free" in report["disk"]
    assert not (tmp_path / "data").exists()  # doctor only looks

    broken = openimagine(
        "doctor",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=user_env(OPENIMAGINE_MODEL__CHECKPOINT=str(tmp_path / "no-such-model")),
    )
    assert broken.returncode == 1
    assert any(line.startswith("FAIL  weights") for line in broken.stdout.splitlines())
    assert broken.stderr.strip() == "missing or broken: weights"


@pytest.mark.timeout(400)
def test_generate_starts_a_local_server_when_none_answers(tmp_path: Path, tiny_checkpoint: Path):
    data = tmp_path / "data"
    env = user_env(
        OPENIMAGINE_DATA_DIR=str(data),
        OPENIMAGINE_MODEL__CHECKPOINT=str(tiny_checkpoint),
        # The local server's default address, where nothing listens.
        OPENIMAGINE_SERVER__PORT=str(free_port()),
    )
    run = openimagine(
        "generate", "a lighthouse", "-o", "here.mp4", *SMALL, cwd=tmp_path, env=env, timeout=380
    )
    assert run.returncode == 0, run.stderr + (data / "embedded-server.log").read_text()
    assert run.stdout.startswith("saved here.mp4")
    assert video_of(tmp_path / "here.mp4")["width"] == 480
    lines = run.stderr.splitlines()
    assert lines[0].startswith("starting a local server")
    base = next(line.split()[-1] for line in lines if line.startswith("task "))
    with pytest.raises(httpx.TransportError):  # stopped afterwards
        httpx.get(base + "/health", timeout=2)
    keys = openimagine("keys", "list", "--data-dir", str(data), cwd=tmp_path, env=env)
    assert "revoked" in keys.stdout and "active" not in keys.stdout  # its key was temporary


def test_a_key_given_with_api_key_lives_only_while_the_flag_names_it(
    tmp_path: Path, tiny_checkpoint: Path
):
    data = tmp_path / "data"
    poll = [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}]
    first = Server(data, checkpoint=tiny_checkpoint, workers=0).start()
    try:
        assert first.post(poll).status_code != 401
    finally:
        first.stop()
    second = Server(data, checkpoint=tiny_checkpoint, workers=0).start()  # another --api-key
    try:
        refused = second.post(poll, key=first.key)
        assert refused.status_code == 401  # the flag no longer names it
        assert refused.json()["errors"][0]["code"] == "invalidApiKey"
        assert second.post(poll).status_code != 401
    finally:
        second.stop()

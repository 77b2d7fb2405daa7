"""Test helpers shared by integration and end-to-end tests (no server imports)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from openimagine.domain.generation import GenerationJob
from openimagine.domain.requests import Mode, SafetyMode

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODEL = "xai:grok-imagine@video"
CLI = str(BIN / "openimagine")


def user_env(**extra: str) -> dict[str, str]:
    """The environment without any openimagine setting of the test run, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENIMAGINE_")}
    return {**env, "OPENIMAGINE_WORKERS__TORCH_THREADS": "2", **extra}


def openimagine(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env=env or user_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and run.stdout == ""
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def t2v(**overrides: Any) -> dict[str, Any]:
    """A small valid text-to-video task."""
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL,
        "positivePrompt": "a lighthouse in a storm",
        "width": 480,
        "height": 480,
        "duration": 1,
    }
    task.update(overrides)
    return task


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file, with exact packet counts."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


class Server:
    """A real `openimagine serve` subprocess on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        *,
        checkpoint: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
        store_url: str | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.key = "oi_test_" + uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.store_url = store_url
        self.args = args or []  # more `serve` options
        self.env = {
            **os.environ,
            "OPENIMAGINE_MODEL__CHECKPOINT": str(checkpoint),
            "OPENIMAGINE_WORKERS__TORCH_THREADS": "2",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self, *, wait_ready: bool = True) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(BIN / "openimagine"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--api-key",
            self.key,
            "--workers",
            str(self.workers),
        ]
        if self.store_url:
            cmd += ["--store", self.store_url]
        cmd += self.args
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_http()
        if wait_ready and self.workers:
            self.wait_ready()
        return self

    def wait_http(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-3000:])

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(self.base + "/ready", timeout=2).status_code == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(self.log.read_text()[-3000:])

    def worker_pids(self) -> list[int]:
        workers = httpx.get(self.base + "/health", timeout=5).json()["workers"]
        return [int(w["id"].split(":")[1]) for w in workers]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def post(
        self, tasks: list[dict[str, Any]], *, key: str | None = None, timeout: float = 30
    ) -> httpx.Response:
        return httpx.post(
            self.base + "/v1",
            json=tasks,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key or self.key}"},
        )

    def poll(self, task_uuid: str, *, timeout: float = 120, n: int = 1) -> dict[str, Any]:
        """Poll getResponse until every result is terminal; return the last envelope."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.post([{"taskType": "getResponse", "taskUUID": task_uuid}]).json()
            items = body.get("data", []) + body.get("errors", [])
            done = [i for i in items if i.get("status") in ("success", "error")]
            if len(done) >= n:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"task {task_uuid} not done: {body}")

    def wait_running(self, task_uuid: str, timeout: float = 60) -> None:
        """Wait until the task reports progress (a worker is generating it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.post([{"taskType": "getResponse", "taskUUID": task_uuid}]).json()
            if any(i.get("progress", 0) > 0 for i in body.get("data", [])):
                return
            time.sleep(0.1)
        raise TimeoutError(f"task {task_uuid} never started")

    def download(self, url: str, dest: Path) -> Path:
        r = httpx.get(url, timeout=30)
        r.raise_for_status()
        dest.write_bytes(r.content)
        return dest


# A small text-to-video job (64x64, 12 frames, MP4), for tests of the worker and its store.
SMALL_T2V = GenerationJob(
    model="xai:grok-imagine@video",
    prompt="a lighthouse",
    mode=Mode.T2V,
    width=64,
    height=64,
    num_frames=12,
    fps=24,
    duration_s=None,
    source_seconds=None,
    output_format="MP4",
    output_quality=80,
    ttl_s=3600,
    number_results=1,
    include_cost=False,
    safety_mode=SafetyMode.NONE,
    webhook_url=None,
)

"""Shared bench plumbing: start servers, build the tiny checkpoint, machine description, ratios."""

from __future__ import annotations

import datetime
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODEL = "xai:grok-imagine@video"
# Threads for torch (and the worker, via OPENIMAGINE_WORKERS__TORCH_THREADS): one per core, the
# same on both sides of every comparison.
THREADS = os.cpu_count() or 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> str:
    """`nproc`, CPU model and Python: the line every result is filed under."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores, {cpu}, {py}"


def today() -> str:
    return datetime.date.today().isoformat()


def load_note() -> str:
    """The 1-minute load average: these machines are shared, so say how busy it was."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def vm_hwm_kib(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a process, in KiB."""
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    if m is None:
        raise RuntimeError(f"no VmHWM for pid {pid}")
    return int(m.group(1))


def cpu_s(pids: list[int | str]) -> float:
    """User + system CPU seconds (all threads) of processes, from /proc/<pid>/stat. The machine
    is shared, so CPU time is a second, less noisy view next to wall time."""
    total = 0
    for pid in pids:
        # Fields after the ")" that ends the command name: utime and stime are the 12th/13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def build_checkpoint(models_dir: Path) -> Path:
    """The offline tiny LTX-2 checkpoint, built as the e2e tests build it: in a subprocess (so
    the caller's own memory figures are not touched) with no hub access."""
    code = (
        "import sys; from pathlib import Path; "
        "from openimagine.backends.tiny import ensure_tiny_checkpoint; "
        "print(ensure_tiny_checkpoint(Path(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(models_dir)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return Path(out.stdout.strip().splitlines()[-1])


class Proc:
    """A server subprocess, waited on until `probe` answers at all (any status)."""

    def __init__(
        self,
        cmd: list[str],
        port: int,
        probe: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        out = log.open("ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(probe, lambda r: True, 120)

    def _wait(self, path: str, ok: Callable[[httpx.Response], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if ok(httpx.get(self.base + path, timeout=2)):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{path} did not answer: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log and self.log.exists() else ""

    def wait_ready(self, timeout: float = 300) -> None:
        """Until a worker has its model loaded (GET /ready is 200)."""
        self._wait("/ready", lambda r: r.status_code == 200, timeout)

    def worker_pids(self) -> list[int]:
        """PIDs of the live workers, from /health ids shaped `host:pid:index`."""
        workers = httpx.get(self.base + "/health", timeout=5).json()["workers"]
        return [int(w["id"].split(":")[1]) for w in workers]

    def pause(self) -> None:
        """SIGSTOP the server and its workers, so they take no CPU while the other side runs."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()  # a stopped process cannot act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def bare_server() -> Proc:
    """The yardstick app under the uvicorn settings `openimagine serve` uses (auto loop and
    HTTP parser, info log level, no access log)."""
    port = free_port()
    cmd = [
        str(BIN / "uvicorn"),
        "bench.bare_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "info",
    ]
    return Proc(cmd, port, "/docs", env={"PYTHONPATH": str(ROOT)})


def our_server(
    data_dir: Path,
    key: str,
    workers: int,
    env: dict[str, str] | None = None,
    store: str | None = None,
    more_keys: tuple[str, ...] = (),
) -> Proc:
    """`openimagine serve` on a free port (SQLite in its data dir unless `store` names
    another), logging next to its data dir; `more_keys` are accepted too, each its own
    tenant."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(BIN / "openimagine"),
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--api-key",
        key,
        "--workers",
        str(workers),
    ]
    for other in more_keys:
        cmd += ["--api-key", other]
    if store is not None:
        cmd += ["--store", store]
    # One key floods the queue here on purpose: quotas far above what a run reaches, so that
    # their checks are measured on every request without refusing any.
    flood = {
        "OPENIMAGINE_QUOTAS__MAX_QUEUED_PER_KEY": "100000000",
        "OPENIMAGINE_QUOTAS__REQUESTS_PER_MINUTE": "1000000000",
    }
    env = {**flood, **(env or {})}
    return Proc(cmd, port, "/health", env=env, log=data_dir.parent / f"serve-{port}.log")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"

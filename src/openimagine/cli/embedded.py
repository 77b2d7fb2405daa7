"""A server started for one CLI call when none answers: `openimagine serve` on a free
loopback port, with a temporary key that is revoked when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Self

import anyio
import httpx

from openimagine.composition import revoke_key
from openimagine.config import Settings
from openimagine.service.auth import generate_key, key_prefix

LOG_NAME = "embedded-server.log"


class EmbeddedServerError(RuntimeError):
    """The embedded server did not come up."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """`openimagine serve` as a child process, for the length of a `with` block.

    It uses the caller's settings (data dir, store, model, workers: at least one) but its own
    port and key, so it never collides with a server the user runs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.key = generate_key()
        self.log_path = settings.data_dir.resolve() / LOG_NAME
        self._proc: subprocess.Popen[bytes] | None = None
        self._key_stored = False

    def start(self) -> None:
        """Start the child process; `wait_ready` waits for its worker."""
        s = self.settings
        cmd = [
            sys.executable,
            "-m",
            "openimagine",
            "serve",
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--data-dir", str(s.data_dir.resolve()), "--api-key", self.key),
            *("--workers", str(max(1, s.workers.count)), "--public-url", self.base_url),
        ]
        if s.store.url:
            cmd += ["--store", s.store.url]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A session of its own: the terminal's Ctrl-C reaches the CLI, which cancels the
            # task and then stops this server in order.
            self._proc = subprocess.Popen(  # noqa: S603 - our own entry point, fixed arguments
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float) -> None:
        """Block until a worker is ready; EmbeddedServerError if the server exits or stalls."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self._proc is not None  # noqa: S101 - start() ran
                if (code := self._proc.poll()) is not None:
                    raise EmbeddedServerError(
                        f"the local server exited with status {code}; see {self.log_path}"
                    )
                try:
                    ready = http.get(self.base_url + "/ready").status_code == 200
                except httpx.TransportError:
                    ready = False
                else:
                    self._key_stored = True  # serve stores its keys before it listens
                if ready:
                    return
                time.sleep(0.2)
        raise EmbeddedServerError(
            f"the local server was not ready after {timeout:g} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and revoke its temporary key."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._key_stored:
            # Left active, the key would keep `serve` from creating (and showing) a first key.
            anyio.run(revoke_key, self.settings, key_prefix(self.key))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

"""End-to-end fixtures: the tiny checkpoint built once, and real servers on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Server


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline tiny LTX-2 checkpoint, built once per test session (in a subprocess, so the
    test process itself stays free of torch)."""
    models = tmp_path_factory.mktemp("models")
    code = (
        "import sys; from pathlib import Path; "
        "from openimagine.backends.tiny import ensure_tiny_checkpoint; "
        "print(ensure_tiny_checkpoint(Path(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(models)],
        check=True,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[Server]:
    """One shared server (SQLite, one worker) for tests that do not restart it."""
    srv = Server(tmp_path_factory.mktemp("srv") / "data", checkpoint=tiny_checkpoint).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[Server]:
    """A server of one's own (for restart and kill tests); started by the test."""
    srv = Server(tmp_path / "data", checkpoint=tiny_checkpoint)
    yield srv
    srv.stop()

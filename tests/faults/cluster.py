"""A PostgreSQL cluster of a test's own, which it may stop, restart and break."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import psycopg


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test run's own (Debian's `pg_*cluster` tools, as root)."""

    version: str
    name: str
    port: int
    database: str = "oi"

    def url(self) -> str:
        """The store URL of its database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def connect(self, database: str | None = None) -> psycopg.Connection:
        dsn = f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}"
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)

    def ctl(self, action: str, *options: str) -> None:
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action]
        subprocess.run([*cmd, *options], check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        cmd = ["pg_createcluster", "--quiet", self.version, self.name, "-p", str(self.port)]
        cmd += ["--start-conf", "manual", "-o", "fsync=off", "-o", "ssl=off"]
        cmd += ["--", "--auth=trust", "--no-sync"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        self.ctl("start")
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {self.database}")

    def restart(self, down_s: float) -> float:
        """Stop the server (fast: every connection is cut), keep it down `down_s`, start it;
        the monotonic time it was back."""
        self.ctl("stop", "-m", "fast")
        time.sleep(down_s)
        self.ctl("start")
        return time.monotonic()

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", self.version, self.name],
            check=False,
            capture_output=True,
            timeout=120,
        )

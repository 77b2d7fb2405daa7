"""What an operator runs around a deployment, as real processes: `openimagine migrate` on
SQLite and PostgreSQL, `serve` and `worker` configured from the environment (a flag wins over
it), and `doctor` checking an S3 bucket (SeaweedFS) by writing, reading and deleting a probe."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from openimagine.store import migrations
from openimagine.store.sql.revision import head_revision
from tests.conftest import PG_DSN
from tests.helpers import CLI, free_port, one_error_line, openimagine, user_env
from tests.s3_server import SeaweedS3

HEAD = head_revision()


# -- migrate ---------------------------------------------------------------------------------


def test_migrate_creates_the_sqlite_schema_then_has_nothing_to_do(tmp_path: Path):
    data = tmp_path / "data"
    first = openimagine("migrate", "--data-dir", str(data), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    db = (data / "openimagine.db").resolve()
    assert first.stdout.splitlines() == [
        f"store: sqlite:///{db}",
        f"schema: created at revision {HEAD}",
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    again = openimagine("migrate", "--data-dir", str(data), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1] == f"schema: already at revision {HEAD}, nothing to do"


def test_migrate_upgrades_a_store_an_earlier_release_wrote(tmp_path: Path):
    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0004")
    engine.dispose()
    env = user_env(OPENIMAGINE_STORE__URL=f"sqlite:///{db}")
    run = openimagine("migrate", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1] == f"schema: upgraded from revision 0004 to {HEAD}"
    assert not (tmp_path / "data").exists()  # the store named by the environment, only


@pytest.mark.postgres
def test_migrate_creates_a_postgresql_schema_and_masks_the_password(tmp_path: Path, pg_schema: str):
    url = sa.engine.make_url(pg_schema).set(password="sekrit")  # trust auth: any is fine
    run = openimagine("migrate", "--store", url.render_as_string(hide_password=False), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    store_line, schema_line = run.stdout.splitlines()
    assert "sekrit" not in run.stdout and ":***@" in store_line
    assert schema_line == f"schema: created at revision {HEAD}"
    schema = pg_schema.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_DSN) as conn:
        version = conn.execute(f"SELECT version_num FROM {schema}.alembic_version").fetchall()  # noqa: S608
    assert version == [(HEAD,)]
    again = openimagine("migrate", "--store", pg_schema, cwd=tmp_path)
    assert again.stdout.splitlines()[1] == f"schema: already at revision {HEAD}, nothing to do"


def test_migrate_says_in_one_line_when_the_store_does_not_answer(tmp_path: Path):
    url = f"postgresql+psycopg://postgres:sekrit@127.0.0.1:{free_port()}/nothing"
    line = one_error_line(openimagine("migrate", "--store", url, cwd=tmp_path))
    assert line.startswith("error: store postgresql+psycopg://postgres:***@127.0.0.1:")
    assert "sekrit" not in line


# -- serve and worker from the environment -----------------------------------------------------


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`openimagine ARGS` in a session of its own, stopped (SIGTERM) when the block ends."""
    log = (cwd / "process.log").open("a")
    proc = subprocess.Popen(
        [CLI, *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def answers(base: str, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    """Whether /health at `base` answers before `timeout` (False at once if `proc` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return httpx.get(base + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            time.sleep(0.1)
    return False


def test_serve_binds_the_address_the_environment_names_unless_flags_name_one(tmp_path: Path):
    port = free_port()
    env = user_env(
        OPENIMAGINE_DATA_DIR=str(tmp_path / "data"),
        OPENIMAGINE_SERVER__HOST="127.0.0.2",  # loopback too: no key needed
        OPENIMAGINE_SERVER__PORT=str(port),
    )
    with running(["serve", "--workers", "0"], env, tmp_path) as proc:
        assert answers(f"http://127.0.0.2:{port}", proc), (tmp_path / "process.log").read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    assert f"at http://127.0.0.2:{port}/v1" in (tmp_path / "process.log").read_text()

    other = free_port()
    flags = ["serve", "--workers", "0", "--host", "127.0.0.1", "--port", str(other)]
    with running(flags, env, tmp_path) as proc:
        assert answers(f"http://127.0.0.1:{other}", proc), (tmp_path / "process.log").read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.2:{port}/health", timeout=1)


def ready_workers(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT count(*) FROM workers WHERE state = 'ready'").fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_worker_starts_as_many_processes_as_the_environment_says(tmp_path: Path):
    data = tmp_path / "data"
    env = user_env(
        OPENIMAGINE_DATA_DIR=str(data),
        OPENIMAGINE_MODEL__BACKEND="fixture",
        OPENIMAGINE_WORKERS__COUNT="2",
    )
    with running(["worker"], env, tmp_path) as proc:
        deadline = time.monotonic() + 90
        while ready_workers(data / "openimagine.db") < 2:
            assert proc.poll() is None, (tmp_path / "process.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "process.log").read_text()
            time.sleep(0.2)
        time.sleep(1)  # no third one comes
        assert ready_workers(data / "openimagine.db") == 2

    none = openimagine("worker", cwd=tmp_path, env={**env, "OPENIMAGINE_WORKERS__COUNT": "0"})
    assert none.returncode == 2 and "Nothing to run" in none.stderr


# -- doctor and an S3 bucket -------------------------------------------------------------------


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


def blobs_line(run: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in run.stdout.splitlines() if line.split()[1:2] == ["blobs"]]
    return line


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return openimagine(
        "doctor", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=user_env(**env)
    )


def test_doctor_writes_reads_and_deletes_a_probe_in_the_bucket(weed: SeaweedS3, tmp_path: Path):
    run = doctor(tmp_path, **weed.server.env("deploy"))
    assert run.returncode == 0, run.stdout + run.stderr
    line = blobs_line(run)
    assert line.startswith("ok") and f"s3://{weed.bucket}/deploy at {weed.endpoint}" in line
    assert "wrote, read back and deleted a probe object" in line
    listed = weed.client().list_objects_v2(Bucket=weed.bucket, Prefix="deploy/")
    assert listed.get("Contents", []) == []  # the probe is gone
    assert not (tmp_path / "data").exists()  # and nothing is left on this machine
    assert run.stderr == ""


def test_doctor_fails_for_a_missing_bucket_without_creating_it(weed: SeaweedS3, tmp_path: Path):
    env = {**weed.server.env(), "OPENIMAGINE_BLOBS__URL": "s3://no-such-bucket/x"}
    run = doctor(tmp_path, **env)
    assert run.returncode == 1
    assert blobs_line(run).startswith("FAIL")
    assert "cannot list the bucket: bucket no-such-bucket does not exist" in blobs_line(run)
    assert run.stderr.strip() == "missing or broken: blobs"
    buckets = {b["Name"] for b in weed.client().list_buckets()["Buckets"]}
    assert "no-such-bucket" not in buckets


def test_doctor_fails_for_wrong_credentials(weed: SeaweedS3, tmp_path: Path):
    run = doctor(tmp_path, **{**weed.server.env(), "AWS_SECRET_ACCESS_KEY": "x" * 40})
    assert run.returncode == 1
    line = blobs_line(run)
    assert line.startswith("FAIL") and "cannot list the bucket: SignatureDoesNotMatch" in line


def test_doctor_fails_quickly_when_the_s3_server_does_not_answer(weed: SeaweedS3, tmp_path: Path):
    nowhere = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = doctor(tmp_path, **{**weed.server.env(), "OPENIMAGINE_BLOBS__S3_ENDPOINT_URL": nowhere})
    assert time.monotonic() - started < 30
    assert run.returncode == 1
    line = blobs_line(run)
    assert line.startswith("FAIL") and f"at {nowhere}: cannot list the bucket" in line
    assert "no answer from the S3 server" in line

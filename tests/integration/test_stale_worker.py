"""A stale worker never replaces a result (issue 11, point 9): each attempt writes its own
file, only the fenced completion publishes one, and the worker whose completion is refused
deletes its file. Real SQLite store, real blob directory, real encoder."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from tests.helpers import SMALL_T2V as SPEC

from openimagine.backends.base import BackendInfo, Clip, Conditioning
from openimagine.config import WorkerSettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.domain.generation import GenerationParams, Grid
from openimagine.domain.jobs import JobStatus, NewJob, ResultStatus
from openimagine.errors import LeaseLost
from openimagine.store.sql import SqlStore
from openimagine.worker.runner import JobRunner

INFO = BackendInfo("colour", "none", False, 48_000, 1)
# Neither heartbeat nor progress fires during the test: the stale worker has not noticed
# that its lease ran out (a long encode, a paused process) when it tries to complete.
CONFIG = WorkerSettings(lease_s=10, heartbeat_s=600, progress_interval_s=600, encode_threads=1)


class _ColourBackend:
    """Every frame one colour; with a gate, `generate` waits for it to open."""

    def __init__(self, colour: int, gate: threading.Event | None = None) -> None:
        self.colour = colour
        self.gate = gate
        self.entered = threading.Event()

    def load(self, device: str) -> BackendInfo:
        return INFO

    def grid(self, width: int, height: int, num_frames: int) -> Grid:
        return Grid(width, height, num_frames)

    def generate(
        self,
        params: GenerationParams,
        on_step: object,
        should_stop: object,
        conditioning: Conditioning | None = None,
    ) -> Clip:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        g = params.grid
        frames = np.full((g.num_frames, g.height, g.width, 3), self.colour, np.uint8)
        samples = g.num_frames * 48_000 // params.fps
        return Clip(frames=frames, audio=np.zeros((2, samples), np.float32), sample_rate=48_000)


class _RecordingBlobs(LocalBlobStore):
    """The local blob store, noting each file put (with its hash) and each delete."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts: dict[str, str] = {}
        self.deleted: list[str] = []

    def put_file(self, key: str, source: Path) -> int:
        self.puts[key] = hashlib.sha256(source.read_bytes()).hexdigest()
        return super().put_file(key, source)

    def delete(self, key: str) -> bool:
        self.deleted.append(key)
        return super().delete(key)


class _Refusals:
    """The store's queue, noting the completions it refused."""

    def __init__(self, queue: object) -> None:
        self._queue = queue
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)

    async def complete_result(
        self, task_uuid: str, token: str, *args: object, **kwargs: object
    ) -> None:
        try:
            await self._queue.complete_result(task_uuid, token, *args, **kwargs)  # type: ignore[attr-defined]
        except LeaseLost:
            self.refused.append(token)
            raise


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    now = [1000.0]
    s = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=2, clock=lambda: now[0])
    s.now = now  # type: ignore[attr-defined]
    await s.migrate()
    yield s
    await s.close()


def _runner(store: SqlStore, queue: _Refusals, backend: _ColourBackend, blobs: LocalBlobStore):
    return JobRunner(queue, backend, INFO, blobs, CONFIG, threading.Event())  # type: ignore[arg-type]


async def test_a_stale_workers_file_never_replaces_the_result(store: SqlStore, tmp_path: Path):
    task, video = str(uuid.uuid4()), str(uuid.uuid4())
    await store.jobs.create(
        NewJob(task, "k1", "videoInference", SPEC, "h", 3, [video], [1], [0.05])
    )
    blobs = _RecordingBlobs(tmp_path / "blobs")
    queue = _Refusals(store.queue)
    gate = threading.Event()
    stale = _ColourBackend(colour=200, gate=gate)
    first = await store.queue.claim("w1", 10)
    assert first is not None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_runner(store, queue, stale, blobs).run, first)
        # the first worker is generating
        assert await anyio.to_thread.run_sync(stale.entered.wait, 10)
        store.now[0] += 11  # type: ignore[attr-defined]  # its lease runs out unnoticed
        second = await store.queue.claim("w2", 10)
        assert second is not None and second.job.task_uuid == task
        assert second.job.attempts == 2
        await _runner(store, queue, _ColourBackend(colour=50), blobs).run(second)
        good = await _served(store, blobs, task)
        gate.set()  # the stale worker finishes its clip and tries to complete it
    assert queue.refused == [first.token]  # its completion was fenced off: LeaseLost

    assert await _served(store, blobs, task) == good  # still the second worker's bytes
    job, [result] = await store.jobs.get(task, None) or (None, [])
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempts == 2
    assert result.blob_key is not None and blobs.puts[result.blob_key] == good
    [stale_key] = [k for k in blobs.puts if k != result.blob_key]
    assert stale_key.endswith(f"/{video}.mp4") and blobs.puts[stale_key] != good
    assert blobs.deleted == [stale_key] and blobs.size(stale_key) is None  # its file is gone
    files = [p for p in (blobs.root / "videos").rglob("*") if p.is_file()]
    assert [p.relative_to(blobs.root).as_posix() for p in files] == [result.blob_key]


async def _served(store: SqlStore, blobs: LocalBlobStore, task: str) -> str:
    """The hash of the file the task's result serves (as the API finds it: by its key)."""
    got = await store.jobs.get(task, None)
    assert got is not None and got[0].status is JobStatus.SUCCEEDED
    [result] = got[1]
    assert result.status is ResultStatus.SUCCESS and result.blob_key is not None
    path = blobs.local_path(result.blob_key)
    assert path is not None
    return hashlib.sha256(path.read_bytes()).hexdigest()

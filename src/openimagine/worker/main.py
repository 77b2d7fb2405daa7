"""A worker process's loop: load the model once, then claim and run jobs until told to stop.

`composition.run_worker_process` builds it (in a spawned process) from the settings.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType

import anyio

from openimagine.backends.base import BackendInfo, VideoBackend
from openimagine.config import Settings
from openimagine.delivery.blobs import BlobStore
from openimagine.domain.records import WorkerInfo, WorkerState
from openimagine.store.protocols import QueueStore, WorkerRegistry
from openimagine.worker.runner import JobRunner
from openimagine.worker.safety import ContentSafety

log = logging.getLogger("openimagine.worker")

_REAP_EVERY_S = 2.0
_WORKER_HEARTBEAT_S = 5.0


def quiet_libraries(settings: Settings) -> None:
    """No hub access unless the operator asked for it (the tiny model and local checkpoints
    load from disk only), and no progress bars in the logs."""
    if not settings.model.allow_hub_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """What a worker runs with."""

    queue: QueueStore
    registry: WorkerRegistry
    backend: VideoBackend
    blobs: BlobStore
    safety: ContentSafety | None


class Worker:
    """One worker process's loop."""

    def __init__(
        self, settings: Settings, parts: WorkerParts, index: int = 0, parent_pid: int | None = None
    ) -> None:
        self.settings = settings
        self.parts = parts
        self.id = f"{socket.gethostname()}:{os.getpid()}:{index}"
        self.shutdown = threading.Event()
        self.parent_pid = parent_pid

    def request_stop(self, *_: object) -> None:
        """Finish or hand back the current job, then exit."""
        self.shutdown.set()

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop the loop after the current step."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s: signal %d, stopping", self.id, signum)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    async def run(self) -> None:
        """Load, register, then loop: claim → run, reaping expired leases on the way."""
        registry = self.parts.registry
        try:
            info = await self._load()
            runner = JobRunner(
                queue=self.parts.queue,
                backend=self.parts.backend,
                info=info,
                blobs=self.parts.blobs,
                config=self.settings.workers,
                shutdown=self.shutdown,
                safety=self.parts.safety,
            )
            await registry.beat(self.id, WorkerState.READY)
            log.info("worker %s ready (%s)", self.id, info.weights)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_parent)
                await self._loop(runner)
                tg.cancel_scope.cancel()
        finally:
            await registry.beat(self.id, WorkerState.STOPPED)

    def _row(self, state: WorkerState, backend: str, weights: str, random: bool) -> WorkerInfo:
        return WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            state=state,
            backend=backend,
            weights=weights,
            random_weights=random,
            started_at=self._started,
            heartbeat_at=time.time(),
        )

    async def _load(self) -> BackendInfo:
        self._started = time.time()
        checkpoint = self.settings.model.checkpoint
        # Registered before loading, so /health shows a worker that is still loading weights.
        name = self.settings.model.backend
        loading = self._row(
            WorkerState.LOADING, name, checkpoint or "tiny-ltx2-v1", checkpoint is None
        )
        await self.parts.registry.register(loading)
        device = self.settings.workers.device
        info = await anyio.to_thread.run_sync(self.parts.backend.load, device)
        if info.notice:
            log.warning(info.notice)
        row = self._row(WorkerState.LOADING, info.name, info.weights, info.random_weights)
        await self.parts.registry.register(row)
        return info

    async def _watch_parent(self) -> None:
        # A pool worker whose server died (even by SIGKILL) hands its job back and exits
        # instead of running on as an orphan. perf: it waits on the parent's sentinel (readable
        # when the parent exits) rather than waking to look.
        parent = multiprocessing.parent_process()
        if self.parent_pid is None or parent is None:
            return
        await anyio.wait_readable(parent.sentinel)
        log.warning("worker %s: parent process is gone; stopping", self.id)
        self.shutdown.set()

    async def _loop(self, runner: JobRunner) -> None:
        queue, workers = self.parts.queue, self.settings.workers
        max_running = self.settings.quotas.max_running_per_key
        last_reap = last_beat = 0.0
        while not self.shutdown.is_set():
            now = time.monotonic()
            if now - last_reap > _REAP_EVERY_S:
                await queue.reap_expired()
                last_reap = now
            if now - last_beat > _WORKER_HEARTBEAT_S:
                await self.parts.registry.beat(self.id, WorkerState.READY)
                last_beat = now
            claim = await queue.claim(self.id, workers.lease_s, max_running=max_running)
            if claim is None:
                # Woken by a submit; the timeout is only the safety net (and the reaper's beat).
                await queue.wait(workers.poll_s)
                continue
            log.info("running %s (attempt %d)", claim.job.task_uuid, claim.job.attempts)
            await runner.run(claim)

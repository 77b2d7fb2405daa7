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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import FrameType

import anyio

from openimagine.backends.base import BackendInfo, VideoBackend
from openimagine.config import Settings
from openimagine.delivery.blobs import BlobStore
from openimagine.domain.jobs import Capability, Claim
from openimagine.domain.records import WorkerInfo, WorkerState
from openimagine.metrics.instruments import instruments
from openimagine.observability import configure_logging, task_context
from openimagine.store.errors import Backoff, retry_transient, transient
from openimagine.store.protocols import QueueStore, WorkerRegistry
from openimagine.worker.runner import JobRunner
from openimagine.worker.safety import ContentSafety

log = logging.getLogger("openimagine.worker")

_REAP_EVERY_S = 2.0
_WORKER_HEARTBEAT_S = 5.0
# The longest pause between tries while the store is away: a restart of a few seconds costs
# at most this much more.
_MAX_BACKOFF_S = 2.0


def quiet_libraries(settings: Settings) -> None:
    """No hub access unless the operator asked for it (the tiny model and local checkpoints
    load from disk only). The model libraries themselves are quietened by the backends that
    import them (`backends.ltx2`): a worker of another backend never pays for torch. Logs
    take the format the settings ask for (text or JSON lines)."""
    configure_logging(settings.log.format)
    if not settings.model.allow_hub_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
        workers = settings.workers
        # The jobs it claims: its models, and the sizes its device takes.
        self.capability = Capability(tuple(workers.models), workers.max_pixel_frames)
        self._last_reap = self._last_beat = 0.0  # monotonic

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
            await self._retry("ready", lambda: registry.beat(self.id, WorkerState.READY))
            log.info("worker %s ready (%s)", self.id, info.weights)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_parent)
                await self._loop(runner)
                tg.cancel_scope.cancel()
        finally:
            try:
                await registry.beat(self.id, WorkerState.STOPPED)
            except Exception as exc:
                if not transient(exc):
                    raise
                # /health leaves the row out once its heartbeat is stale.
                log.warning("worker %s: could not record its stop (%s)", self.id, exc)

    async def _retry(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        """A store write of the worker's own, tried again while the store is away (the model
        stays loaded meanwhile), until it succeeds or the worker is told to stop."""
        backoff = Backoff(f"worker {self.id}: {what}", log, max_s=_MAX_BACKOFF_S)
        await retry_transient(call, backoff, give_up=self.shutdown.is_set)

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
            capability=self.capability,
        )

    async def _load(self) -> BackendInfo:
        self._started = time.time()
        checkpoint = self.settings.model.checkpoint
        # Registered before loading, so /health shows a worker that is still loading weights.
        name = self.settings.model.backend
        loading = self._row(
            WorkerState.LOADING, name, checkpoint or "tiny-ltx2-v1", checkpoint is None
        )
        await self._retry("register", lambda: self.parts.registry.register(loading))
        device = self.settings.workers.device
        info = await anyio.to_thread.run_sync(self.parts.backend.load, device)
        if info.notice:
            log.warning(info.notice)
        row = self._row(WorkerState.LOADING, info.name, info.weights, info.random_weights)
        await self._retry("register", lambda: self.parts.registry.register(row))
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
        """Claim and run jobs until told to stop. A store that is away (a database restart)
        is waited out with backoff, never the end of the process: the model stays loaded."""
        backoff = Backoff(f"worker {self.id}", log, max_s=_MAX_BACKOFF_S)
        while not self.shutdown.is_set():
            try:
                claim = await self._claim()
            except Exception as exc:
                if not transient(exc):
                    raise
                await anyio.sleep(backoff.failed(exc))
                continue
            backoff.succeeded()
            if claim is None:
                # Woken by a submit; the timeout is only the safety net (and the reaper's beat).
                await self.parts.queue.wait(self.settings.workers.poll_s)
                continue
            await self._run(runner, claim)

    async def _run(self, runner: JobRunner, claim: Claim) -> None:
        """Run a claim, its task's UUID on every log line, the heartbeat row kept fresh (a
        worker whose row goes stale leaves /health while it works)."""
        job, metrics = claim.job, runner.metrics
        metrics.claimed(job.created_at, job.started_at, job.attempts)
        started = time.monotonic()
        with task_context(job.task_uuid):
            log.info("running %s (attempt %d)", job.task_uuid, job.attempts)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._beat_while_running)
                    await runner.run(claim)
                    tg.cancel_scope.cancel()
            finally:
                metrics.ran(time.monotonic() - started)

    async def _beat_while_running(self) -> None:
        while True:
            await anyio.sleep(_WORKER_HEARTBEAT_S)
            try:
                await self.parts.registry.beat(self.id, WorkerState.READY)
            except Exception as exc:
                if not transient(exc):
                    raise
                log.warning("worker %s: heartbeat failed (%s)", self.id, exc)
            self._last_beat = time.monotonic()

    async def _claim(self) -> Claim | None:
        """Reap expired leases and beat now and then; the next job, if any."""
        queue, workers = self.parts.queue, self.settings.workers
        now = time.monotonic()
        if now - self._last_reap > _REAP_EVERY_S:
            instruments().reaped(await queue.reap_expired())
            self._last_reap = now
        if now - self._last_beat > _WORKER_HEARTBEAT_S:
            await self.parts.registry.beat(self.id, WorkerState.READY)
            self._last_beat = now
        max_running = self.settings.quotas.max_running_per_key
        return await queue.claim(
            self.id, workers.lease_s, max_running=max_running, capability=self.capability
        )

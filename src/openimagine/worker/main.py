"""A worker process: load the model once, then claim and run jobs until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType

import anyio

from openimagine.backends.base import BackendInfo
from openimagine.backends.ltx2 import LTX2Backend
from openimagine.config import Settings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.store.base import WorkerInfo
from openimagine.store.sql import SqlStore
from openimagine.worker.runner import JobRunner, RunnerConfig
from openimagine.worker.safety import ContentSafety, NudeNetChecker

log = logging.getLogger("openimagine.worker")

_REAP_EVERY_S = 2.0
_WORKER_HEARTBEAT_S = 5.0


def _quiet_libraries(settings: Settings) -> None:
    # No hub access unless the operator asked for it: the tiny model and local checkpoints
    # load from disk only.
    if not settings.model.allow_hub_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


def make_backend(settings: Settings) -> LTX2Backend:
    """The backend the settings name (LTX-2; tiny random weights unless a checkpoint is set)."""
    return LTX2Backend(
        checkpoint=settings.model.checkpoint,
        models_dir=settings.models_dir(),
        steps=settings.model.steps,
        torch_threads=settings.workers.torch_threads,
    )


def make_safety(settings: Settings) -> ContentSafety:
    """Content checks as the settings ask; the detector itself loads on the first check."""
    checker = NudeNetChecker(
        threshold=settings.safety.threshold,
        labels=settings.safety.labels,
        threads=settings.safety.threads,
    )
    return ContentSafety(
        checker=checker,
        action=settings.safety.action,
        fast_frames=settings.safety.fast_frames,
    )


class Worker:
    """One worker process's loop."""

    def __init__(self, settings: Settings, index: int = 0, parent_pid: int | None = None) -> None:
        self.settings = settings
        self.id = f"{socket.gethostname()}:{os.getpid()}:{index}"
        self.shutdown = threading.Event()
        self.parent_pid = parent_pid

    def request_stop(self, *_: object) -> None:
        """Finish or hand back the current job, then exit."""
        self.shutdown.set()

    async def run(self) -> None:
        """Load, register, then loop: claim → run, reaping expired leases on the way."""
        settings = self.settings
        store = SqlStore(settings.store_url(), pool_size=2)
        try:
            await store.migrate()
            info = await self._load(store)
            runner = JobRunner(
                store=store,
                backend=self.backend,
                info=info,
                blobs=LocalBlobStore(settings.blob_dir()),
                signer=UrlSigner(settings.signing_secret(), settings.public_url()),
                config=RunnerConfig(
                    lease_s=settings.workers.lease_s,
                    heartbeat_s=settings.workers.heartbeat_s,
                    progress_interval_s=settings.workers.progress_interval_s,
                    encode_threads=settings.workers.encode_threads,
                    steps=settings.model.steps,
                ),
                shutdown=self.shutdown,
                safety=make_safety(settings),
            )
            await store.worker_heartbeat(self.id, "ready")
            log.info("worker %s ready (%s)", self.id, info.weights)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_parent)
                await self._loop(store, runner)
                tg.cancel_scope.cancel()
        finally:
            await store.worker_heartbeat(self.id, "stopped")
            await store.close()

    async def _load(self, store: SqlStore) -> BackendInfo:
        started = time.time()

        def row(backend: str, weights: str, random_weights: bool) -> WorkerInfo:
            return WorkerInfo(
                id=self.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                state="loading",
                backend=backend,
                weights=weights,
                random_weights=random_weights,
                started_at=started,
                heartbeat_at=time.time(),
            )

        self.backend = make_backend(self.settings)
        checkpoint = self.settings.model.checkpoint
        # Registered before loading, so /health shows a worker that is still loading weights.
        await store.register_worker(row("ltx2", checkpoint or "tiny-ltx2-v1", checkpoint is None))
        info = await anyio.to_thread.run_sync(self.backend.load, self.settings.workers.device)
        if info.notice:
            log.warning(info.notice)
        await store.register_worker(row(info.name, info.weights, info.random_weights))
        return info

    async def _watch_parent(self) -> None:
        # A pool worker whose server died (even by SIGKILL) hands its job back and exits
        # instead of running on as an orphan.
        if self.parent_pid is None:
            return
        while os.getppid() == self.parent_pid:  # noqa: ASYNC110 - polling the OS, no event to await
            await anyio.sleep(0.5)
        log.warning("worker %s: parent process is gone; stopping", self.id)
        self.shutdown.set()

    async def _loop(self, store: SqlStore, runner: JobRunner) -> None:
        last_reap = last_beat = 0.0
        while not self.shutdown.is_set():
            now = time.monotonic()
            if now - last_reap > _REAP_EVERY_S:
                await store.reap_expired()
                last_reap = now
            if now - last_beat > _WORKER_HEARTBEAT_S:
                await store.worker_heartbeat(self.id, "ready")
                last_beat = now
            claim = await store.claim_next(self.id, self.settings.workers.lease_s)
            if claim is None:
                await anyio.sleep(self.settings.workers.poll_s)
                continue
            log.info("running %s (attempt %d)", claim.job.task_uuid, claim.job.attempts)
            await runner.run(claim)


def _install_signals(worker: Worker) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: signal %d, stopping", worker.id, signum)
        worker.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def worker_main(settings: Settings, index: int = 0, parent_pid: int | None = None) -> None:
    """Process entry point (also the target of spawned pool processes)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _quiet_libraries(settings)
    worker = Worker(settings, index, parent_pid)
    _install_signals(worker)
    anyio.run(worker.run)

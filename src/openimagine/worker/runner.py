"""Run one claimed job: every pending result generated, rendered, stored and recorded.

Generation and encoding are blocking and run in a thread; the event loop meanwhile renews the
lease and writes progress, so a slow step never costs the lease, and a cancel is seen within a
step. Finished results and failures are recorded with the deliveries they trigger, named by
event: the outbox renders the bodies, so this process needs no URL-signing secret.

A store that is away for a while (a database restart) costs the job nothing: the lease
outlasts a restart, so failed heartbeats and progress writes are only tried again, the job
goes on, and its writes are retried with backoff until the store is back; then the lease's
fence decides whether the job is still this worker's. Only a worker told to stop while the
store is away leaves the job, for its lease to expire.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from openimagine.backends.base import BackendInfo, Canceled, Clip, Conditioning, VideoBackend
from openimagine.config import WorkerSettings
from openimagine.delivery.blobs import BlobStore
from openimagine.domain.deliveries import DeliveryEvent, DeliveryKind, NewDelivery
from openimagine.domain.generation import GenerationJob, GenerationParams, Grid
from openimagine.domain.jobs import (
    CANCELED,
    Claim,
    JobStatus,
    Result,
    ResultStatus,
    ResultUpdate,
)
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.errors import LeaseLost, OpenImagineError
from openimagine.media.encode import content_type, extension
from openimagine.metrics.instruments import Metrics, instruments
from openimagine.store.errors import Backoff, retry_transient, transient
from openimagine.store.protocols import QueueStore
from openimagine.worker.conditioning import load_conditioning
from openimagine.worker.extension import assemble, continuation, load_source, plan
from openimagine.worker.render import Target, render_clip
from openimagine.worker.safety import ContentBlocked, ContentSafety, Verdict

log = logging.getLogger(__name__)
T = TypeVar("T")

# Share of one result's progress spent denoising; the rest is decode and encode.
_STEP_SHARE = 0.85
# The longest pause between tries of a job's write while the store is away.
_WRITE_BACKOFF_MAX_S = 2.0


@dataclass
class _Progress:
    """Progress and stop state shared between the generation thread and the event loop."""

    total: int
    done: int = 0
    fraction: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    canceled: bool = False
    lease_lost: bool = False
    blocked: int = 0  #: results withheld by content safety; they end as errors
    abandoned: bool = False  #: told to stop while the store was away: the lease will expire
    succeeded: bool = False  #: the last result's completion ended the job too

    def percent(self) -> int:
        return min(99, int(100 * (self.done + self.fraction) / self.total))

    def next_result(self) -> None:
        self.done += 1
        self.fraction = 0.0


class JobRunner:
    """Runs claims for one worker process."""

    def __init__(
        self,
        queue: QueueStore,
        backend: VideoBackend,
        info: BackendInfo,
        blobs: BlobStore,
        config: WorkerSettings,
        shutdown: threading.Event,
        safety: ContentSafety | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.queue = queue
        self.backend = backend
        self.info = info
        self.blobs = blobs
        self.config = config
        self.shutdown = shutdown
        self.safety = safety
        self.metrics = metrics if metrics is not None else instruments()

    async def run(self, claim: Claim) -> None:
        """Run a claim to a terminal state (or hand it back on shutdown)."""
        pending = [r for r in claim.results if r.status is ResultStatus.PROCESSING]
        state = _Progress(total=len(claim.results), done=len(claim.results) - len(pending))
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep_lease, claim, state)
            tg.start_soon(self._report_progress, claim, state)
            try:
                await self._run_results(claim, pending, state)
            except LeaseLost:
                state.lease_lost = True
            except Exception as exc:
                if not (transient(exc) and self.shutdown.is_set()):  # a write given up on
                    raise
                state.abandoned = True
            finally:
                tg.cancel_scope.cancel()
        if state.abandoned:
            log.warning(
                "stopping while the store is away: %s runs again once its lease expires",
                claim.job.task_uuid,
            )
            return
        await self._finish(claim, state)

    async def _finish(self, claim: Claim, state: _Progress) -> None:
        task = claim.job.task_uuid
        try:
            if state.succeeded:  # ended with its last result (a lease check since is moot)
                self.metrics.task_finished(JobStatus.SUCCEEDED)
            elif state.lease_lost:
                log.warning("lease lost on %s; another worker owns it now", task)
            elif state.canceled:
                await self._fail(claim, CANCELED.code, CANCELED.message, JobStatus.CANCELED)
            elif self.shutdown.is_set() and state.done < state.total:
                await self._write(task, "release", lambda: self.queue.release(task, claim.token))
            elif state.done == state.total and state.blocked:
                message = "The result was withheld: NSFW content was detected."
                await self._fail(claim, ContentBlocked.default_code, message)
            elif state.done == state.total:
                finish = functools.partial(
                    self.queue.finish, task, claim.token, JobStatus.SUCCEEDED
                )
                await self._write(task, "finish", finish)
                self.metrics.task_finished(JobStatus.SUCCEEDED)
        except LeaseLost:
            log.warning("lease lost on %s while finishing", task)
        except Exception as exc:
            if not (transient(exc) and self.shutdown.is_set()):  # a write given up on
                raise
            log.warning("stopping while the store is away: %s runs again later (%s)", task, exc)

    async def _write(self, task: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A write of the job's, tried again while the store is away (see the module's
        docstring); given up on, with the store's error, only when shutting down."""
        backoff = Backoff(f"{what} of {task}", log, max_s=_WRITE_BACKOFF_MAX_S)
        return await retry_transient(call, backoff, give_up=self.shutdown.is_set)

    async def _run_results(self, claim: Claim, pending: list[Result], state: _Progress) -> None:
        spec = claim.job.spec
        frames = plan(spec).generated_frames if spec.mode is Mode.EXTEND else spec.num_frames
        grid = self.backend.grid(spec.width, spec.height, frames)
        for result in pending:
            if state.stop.is_set():
                break
            try:
                update = await anyio.to_thread.run_sync(self._produce, spec, grid, result, state)
            except Canceled:
                state.canceled = not self.shutdown.is_set() and not state.lease_lost
                return
            except ContentBlocked:  # only this result: the others still run and are served
                state.blocked += 1
                state.next_result()
                continue
            except OpenImagineError as exc:  # e.g. an input that is gone: the user's error
                log.warning("task %s failed: %s", claim.job.task_uuid, exc.message)
                await self._fail(claim, exc.code, exc.message)
                state.stop.set()
                return
            except Exception:
                log.exception("generation failed for %s", claim.job.task_uuid)
                # The exception's text can name this host's paths or devices: logged above,
                # never stored where the client reads it.
                await self._fail(claim, "inferenceError", "Generation failed on the server.")
                state.stop.set()
                return
            task, new = claim.job.task_uuid, _deliveries(spec, result)
            # perf: the last result ends the job in the same transaction (one write fewer a
            # job), unless an earlier one was withheld, which fails it instead.
            last = result is pending[-1] and not state.blocked
            complete = functools.partial(
                self.queue.complete_result, task, claim.token, update, new, last=last
            )
            try:
                await self._write(task, "result", complete)
            except LeaseLost:
                # Another worker owns the job now, and its result is (or will be) the one
                # served: this attempt's file is nobody's, so it goes.
                await self._discard(update.blob_key)
                raise
            self.metrics.result_succeeded(result.cost)
            state.next_result()
            state.succeeded = last

    async def _discard(self, key: str) -> None:
        """Delete a file that no result records; a failure is logged (the file is left as
        an orphan) so that the lease loss it follows is still what the caller sees."""
        try:
            await anyio.to_thread.run_sync(self.blobs.delete, key)
        except Exception:
            log.exception("could not delete the unpublished file %s", key)

    def _produce(
        self, spec: GenerationJob, grid: Grid, result: Result, state: _Progress
    ) -> ResultUpdate:
        """Blocking: generate, fit, encode and store one result."""

        def on_step(step: int, total: int) -> None:
            state.fraction = _STEP_SHARE * step / total

        def on_frame(done: int, total: int) -> None:
            state.fraction = _STEP_SHARE + (1 - _STEP_SHARE) * done / total
            if state.stop.is_set():
                raise Canceled

        params = GenerationParams(spec.prompt, grid, spec.fps, result.seed)
        t0 = time.perf_counter()
        clip = self._generate(spec, params, on_step, state)
        t1 = time.perf_counter()
        self.metrics.generated(t1 - t0)
        target = self._target(spec, result)
        verdict = self._check(clip, target, spec.safety_mode)
        suffix = extension(spec.output_format)
        path = self.blobs.scratch_path(suffix)
        try:
            t2 = time.perf_counter()
            render_clip(clip, target, path, on_frame)
            self.metrics.encoded(spec.output_format, time.perf_counter() - t2)
            del clip
            key = attempt_key(result.video_uuid, suffix)
            size = self.blobs.put_file(key, path)
        finally:
            path.unlink(missing_ok=True)
        log.info(
            "%s result %d: generated in %.2f s, rendered and stored in %.2f s",
            result.task_uuid,
            result.index,
            t1 - t0,
            time.perf_counter() - t1,
        )
        return ResultUpdate(
            video_uuid=result.video_uuid,
            blob_key=key,
            content_type=content_type(spec.output_format),
            size_bytes=size,
            nsfw=None if verdict is None else verdict.nsfw,
            expires_at=time.time() + spec.ttl_s,
        )

    def _generate(
        self,
        spec: GenerationJob,
        params: GenerationParams,
        on_step: Callable[[int, int], None],
        state: _Progress,
    ) -> Clip:
        """The clip to render: the backend's, or for an extension the input followed by the
        backend's continuation of its last frames and audio."""
        if spec.mode is not Mode.EXTEND:
            conditioning = load_conditioning(spec, self.blobs, params.grid)
            return self.backend.generate(params, on_step, state.stop.is_set, conditioning)
        parts = plan(spec)
        source = load_source(spec, self.blobs, parts, self.info.audio_sample_rate)
        start = Conditioning(continuation=continuation(source, parts, params.grid, spec.fps))
        clip = self.backend.generate(params, on_step, state.stop.is_set, start)
        return assemble(source, clip, parts, spec)

    def _target(self, spec: GenerationJob, result: Result) -> Target:
        """The file `result` becomes: the job's exact size, length, rate and format."""
        return Target(
            width=spec.width,
            height=spec.height,
            num_frames=spec.num_frames,
            fps=spec.fps,
            fmt=spec.output_format,
            quality=spec.output_quality,
            threads=self.config.encode_threads,
            comment=self._comment(spec, result),
        )

    def _check(self, clip: Clip, target: Target, mode: SafetyMode) -> Verdict | None:
        """Content safety on the fitted frames `mode` picks (None: not checked).

        Runs before encoding, so a blocked clip never reaches a file, let alone the blob store.
        """
        if self.safety is None:
            return None
        verdict = self.safety.scan(
            clip.frames, target.num_frames, target.width, target.height, mode
        )
        if verdict is not None and verdict.nsfw and self.safety.blocks:
            raise ContentBlocked("NSFW content was detected.")
        return verdict

    def _comment(self, spec: GenerationJob, result: Result) -> str:
        text = f"openimagine {spec.model} weights={self.info.weights} seed={result.seed}"
        if self.info.random_weights:
            text += " RANDOM WEIGHTS: output is noise"
        return text

    async def _fail(
        self, claim: Claim, code: str, message: str, status: JobStatus = JobStatus.FAILED
    ) -> None:
        """End the job with `status`; its unfinished results take the error, and a webhook
        reports them."""
        hook = claim.job.spec.webhook_url
        deliveries = (
            [NewDelivery(DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, hook)] if hook else []
        )
        task = claim.job.task_uuid
        await self._write(
            task,
            "finish",
            lambda: self.queue.finish(task, claim.token, status, code, message, deliveries),
        )
        self.metrics.task_finished(status, code)

    async def _keep_lease(self, claim: Claim, state: _Progress) -> None:
        """Renew the lease every `heartbeat_s`. A renewal the store could not take (it is away)
        is tried again sooner, and the job goes on: the lease outlasts a database restart, and
        once the store is back its fence says whether the lease still holds (`LeaseLost`)."""
        task, heartbeat_s = claim.job.task_uuid, self.config.heartbeat_s
        backoff = Backoff(f"lease of {task}", log, first_s=0.2, max_s=heartbeat_s)
        delay = heartbeat_s
        while True:
            await anyio.sleep(delay)
            try:
                canceled = await self.queue.heartbeat(task, claim.token, self.config.lease_s)
            except LeaseLost:
                state.lease_lost = True
                state.stop.set()
                return
            except Exception as exc:
                if not transient(exc):
                    raise
                delay = backoff.failed(exc)
                continue
            backoff.succeeded()
            delay = heartbeat_s
            if canceled or self.shutdown.is_set():
                state.stop.set()

    async def _report_progress(self, claim: Claim, state: _Progress) -> None:
        last = -1
        while True:
            await anyio.sleep(self.config.progress_interval_s)
            if self.shutdown.is_set():
                state.stop.set()
            pct = state.percent()
            if pct == last:
                continue
            last = pct
            try:
                if await self.queue.progress(claim.job.task_uuid, claim.token, pct):
                    state.stop.set()
            except LeaseLost:
                state.lease_lost = True
                state.stop.set()
                return
            except Exception as exc:
                if not transient(exc):
                    raise
                last = -1  # written again next time; the lease keeper logs the outage


def attempt_key(video_uuid: str, suffix: str) -> str:
    """A blob key no other attempt at the same result writes.

    A worker whose lease ran out may still be encoding when another worker re-claims the job
    and finishes it. Under one shared key the stale file would replace the served one; under
    its own, only the fenced `complete_result` publishes a file (it records the key), and a
    stale worker's completion fails and deletes its file. The suffix is random rather than
    a piece of the lease token, which fences the store's writes and stays out of URLs; it names
    a folder, so that the file (and the URL) is still named after the video UUID, as a user
    downloading it expects.
    """
    return f"videos/{secrets.token_hex(4)}/{video_uuid}{suffix}"


def _deliveries(spec: GenerationJob, result: Result) -> list[NewDelivery]:
    """What one finished result triggers: its upload PUT, then its webhook POST."""
    ready = DeliveryEvent.RESULT_READY
    out = []
    if spec.upload_endpoint is not None:
        out.append(NewDelivery(DeliveryKind.UPLOAD, ready, spec.upload_endpoint, result.video_uuid))
    if spec.webhook_url is not None:
        out.append(NewDelivery(DeliveryKind.WEBHOOK, ready, spec.webhook_url, result.video_uuid))
    return out

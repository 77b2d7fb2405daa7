"""Run one claimed job: every pending result generated, rendered, stored and recorded.

Generation and encoding are blocking and run in a thread; the event loop meanwhile renews the
lease and writes progress, so a slow step never costs the lease, and a cancel is seen within a
step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction

import anyio

from openimagine.backends.base import BackendInfo, Canceled, Clip, VideoBackend
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.items import error_item, result_item
from openimagine.delivery.signing import UrlSigner
from openimagine.domain.jobs import Claim, JobStatus, Result, ResultStatus
from openimagine.domain.params import GenerationParams, VideoRequest
from openimagine.errors import LeaseLost, OpenImagineError
from openimagine.media.encode import content_type, extension
from openimagine.media.fit import frames_needed
from openimagine.store.base import OutboxItem, ResultUpdate, TaskStore
from openimagine.worker.conditioning import load_conditioning
from openimagine.worker.render import Target, render_clip
from openimagine.worker.safety import ContentBlocked, ContentSafety, Verdict

log = logging.getLogger(__name__)

# Share of one result's progress spent denoising; the rest is decode and encode.
_STEP_SHARE = 0.85


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """The settings a runner needs."""

    lease_s: float
    heartbeat_s: float
    progress_interval_s: float
    encode_threads: int
    steps: int | None


class _Progress:
    """Progress and stop state shared between the generation thread and the event loop."""

    def __init__(self, total_results: int) -> None:
        self.total = total_results
        self.done = 0
        self.fraction = 0.0
        self.stop = threading.Event()
        self.canceled = False
        self.lease_lost = False
        self.blocked: list[Result] = []  # withheld by content safety; they end as errors

    def percent(self) -> int:
        return min(99, int(100 * (self.done + self.fraction) / self.total))


class JobRunner:
    """Runs claims for one worker process."""

    def __init__(
        self,
        store: TaskStore,
        backend: VideoBackend,
        info: BackendInfo,
        blobs: LocalBlobStore,
        signer: UrlSigner,
        config: RunnerConfig,
        shutdown: threading.Event,
        safety: ContentSafety | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.info = info
        self.blobs = blobs
        self.signer = signer
        self.config = config
        self.shutdown = shutdown
        self.safety = safety

    async def run(self, claim: Claim) -> None:
        """Run a claim to a terminal state (or hand it back on shutdown)."""
        request = VideoRequest.from_json(claim.job.request)
        pending = [r for r in claim.results if r.status is ResultStatus.PROCESSING]
        state = _Progress(len(claim.results))
        state.done = len(claim.results) - len(pending)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep_lease, claim, state)
            tg.start_soon(self._report_progress, claim, state)
            try:
                await self._run_results(claim, request, pending, state)
            except LeaseLost:
                state.lease_lost = True
            finally:
                tg.cancel_scope.cancel()
        await self._finish(claim, request, state)

    async def _finish(self, claim: Claim, request: VideoRequest, state: _Progress) -> None:
        task = claim.job.task_uuid
        try:
            if state.lease_lost:
                log.warning("lease lost on %s; another worker owns it now", task)
            elif state.canceled:
                await self._fail(
                    claim, request, "taskCancelled", "The task was cancelled.", JobStatus.CANCELED
                )
            elif self.shutdown.is_set() and state.done < state.total:
                await self.store.release_job(task, claim.token)
            elif state.done == state.total and state.blocked:
                message = "The result was withheld: NSFW content was detected."
                code = ContentBlocked.default_code
                await self._fail(claim, request, code, message, unfinished=state.blocked)
            elif state.done == state.total:
                await self.store.finish_job(task, claim.token, JobStatus.SUCCEEDED)
        except LeaseLost:
            log.warning("lease lost on %s while finishing", task)

    async def _run_results(
        self, claim: Claim, request: VideoRequest, pending: list[Result], state: _Progress
    ) -> None:
        for result in pending:
            if state.stop.is_set():
                break
            try:
                update = await anyio.to_thread.run_sync(
                    self._produce, claim, request, result, state
                )
            except Canceled:
                state.canceled = not self.shutdown.is_set() and not state.lease_lost
                return
            except ContentBlocked:  # only this result: the others still run and are served
                state.blocked.append(result)
                state.done += 1
                state.fraction = 0.0
                continue
            except OpenImagineError as exc:  # e.g. an input that is gone: the user's error
                log.warning("task %s failed: %s", claim.job.task_uuid, exc.message)
                await self._fail(claim, request, exc.code, exc.message)
                state.stop.set()
                return
            except Exception as exc:
                log.exception("generation failed for %s", claim.job.task_uuid)
                await self._fail(claim, request, "inferenceError", f"Generation failed: {exc}")
                state.stop.set()
                return
            outbox = self._outbox_for(claim, request, result, update)
            await self.store.complete_result(claim.job.task_uuid, claim.token, update, outbox)
            state.done += 1
            state.fraction = 0.0

    def _produce(
        self, claim: Claim, request: VideoRequest, result: Result, state: _Progress
    ) -> ResultUpdate:
        """Blocking: generate, fit, encode and store one result."""
        assert request.width is not None  # noqa: S101 - resolved before a job is queued
        assert request.height is not None  # noqa: S101
        if request.num_frames is not None:  # video-to-video without duration: the input's
            num_frames = request.num_frames
        else:
            assert request.duration_s is not None  # noqa: S101
            num_frames = frames_needed(Fraction(request.duration_s), request.fps)
        params = GenerationParams(
            prompt=request.prompt,
            width=request.width,
            height=request.height,
            num_frames=num_frames,
            fps=request.fps,
            seed=result.seed,
            steps=self.config.steps,
        )

        def on_step(step: int, total: int) -> None:
            state.fraction = _STEP_SHARE * step / total

        def on_frame(done: int, total: int) -> None:
            state.fraction = _STEP_SHARE + (1 - _STEP_SHARE) * done / total
            if state.stop.is_set():
                raise Canceled

        grid = self.backend.grid(request.width, request.height, num_frames)
        conditioning = load_conditioning(request, self.blobs, grid, request.fps)
        clip = self.backend.generate(params, on_step, state.stop.is_set, conditioning)
        del conditioning
        target = Target(
            width=request.width,
            height=request.height,
            num_frames=num_frames,
            fps=request.fps,
            fmt=request.output_format,
            quality=request.output_quality,
            threads=self.config.encode_threads,
            comment=self._comment(request, result),
        )
        verdict = self._check(clip, target, request.safety_mode)
        path = self.blobs.scratch_path(extension(request.output_format))
        try:
            render_clip(clip, target, path, on_frame)
            del clip
            key = f"videos/{result.video_uuid}{extension(request.output_format)}"
            size = self.blobs.put_file(key, path)
        finally:
            path.unlink(missing_ok=True)
        return ResultUpdate(
            video_uuid=result.video_uuid,
            blob_key=key,
            content_type=content_type(request.output_format),
            size_bytes=size,
            cost=None,
            nsfw=None if verdict is None else verdict.nsfw,
            expires_at=time.time() + request.ttl_s,
        )

    def _check(self, clip: Clip, target: Target, mode: str) -> Verdict | None:
        """Content safety on the fitted frames `safety_mode` picks (None: not checked).

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

    def _comment(self, request: VideoRequest, result: Result) -> str:
        text = f"openimagine {request.model} weights={self.info.weights} seed={result.seed}"
        if self.info.random_weights:
            text += " RANDOM WEIGHTS: output is noise"
        return text

    def _outbox_for(
        self, claim: Claim, request: VideoRequest, result: Result, update: ResultUpdate
    ) -> list[OutboxItem]:
        """Deliveries of one finished result: its webhook POST and its upload PUT."""
        rows = []
        if request.upload_endpoint is not None:
            upload = {
                "videoUUID": result.video_uuid,
                "blobKey": update.blob_key,
                "contentType": update.content_type,
            }
            rows.append(self._row(claim, "upload", request.upload_endpoint, upload))
        if request.webhook_url is not None:
            done = dataclasses.replace(
                result,
                status=ResultStatus.SUCCESS,
                blob_key=update.blob_key,
                expires_at=update.expires_at,
            )
            item = result_item(claim.job, done, request, self.signer)
            rows.append(self._row(claim, "webhook", request.webhook_url, {"data": [item]}))
        return rows

    @staticmethod
    def _row(claim: Claim, kind: str, url: str, payload: object) -> OutboxItem:
        return OutboxItem(
            id=str(uuid.uuid4()),
            task_uuid=claim.job.task_uuid,
            kind=kind,
            url=url,
            payload=json.dumps(payload),
        )

    async def _fail(
        self,
        claim: Claim,
        request: VideoRequest,
        code: str,
        message: str,
        status: JobStatus = JobStatus.FAILED,
        unfinished: list[Result] | None = None,
    ) -> None:
        """End the job with `status`, reporting each unfinished result to the webhook
        (`unfinished`: those still processing, when the claim's list is out of date)."""
        outbox: list[OutboxItem] = []
        if request.webhook_url is not None:
            if unfinished is None:
                unfinished = [r for r in claim.results if r.status is ResultStatus.PROCESSING]
            failed = [
                dataclasses.replace(
                    r, status=ResultStatus.ERROR, error_code=code, error_message=message
                )
                for r in unfinished
            ]
            payload = {"errors": [error_item(claim.job, r) for r in failed]}
            outbox.append(self._row(claim, "webhook", request.webhook_url, payload))
        await self.store.finish_job(claim.job.task_uuid, claim.token, status, code, message, outbox)

    async def _keep_lease(self, claim: Claim, state: _Progress) -> None:
        while True:
            await anyio.sleep(self.config.heartbeat_s)
            try:
                canceled = await self.store.heartbeat(
                    claim.job.task_uuid, claim.token, self.config.lease_s
                )
            except LeaseLost:
                state.lease_lost = True
                state.stop.set()
                return
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
                if await self.store.set_progress(claim.job.task_uuid, claim.token, pct):
                    state.stop.set()
            except LeaseLost:
                state.lease_lost = True
                state.stop.set()
                return

"""The service: what every front door calls. Validate → price → persist; read back; cancel."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.items import job_items, media_path
from openimagine.delivery.signing import UrlSigner
from openimagine.domain.jobs import Job
from openimagine.domain.params import Mode, VideoRequest
from openimagine.errors import AuthError, Conflict, InvalidInput, MediaError, NotFound
from openimagine.inputs import InputResolver, Kind
from openimagine.keys import hash_key
from openimagine.media.sources import SourceKind, classify, decode_inline
from openimagine.models.card import ModelCard
from openimagine.models.fields import check_task_uuid, get_choice, get_str, reject_unknown
from openimagine.models.pricing import as_float, quote
from openimagine.models.validation import SEED_MAX, Limits, validate_video_task
from openimagine.store.base import MediaItem, NewJob, TaskStore

_AUTH_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Limits and lifetimes the service enforces."""

    limits: Limits
    max_attempts: int
    max_upload_bytes: int


class VideoService:
    """Submit, poll, cancel and upload, independent of the transport."""

    def __init__(
        self,
        store: TaskStore,
        card: ModelCard,
        blobs: LocalBlobStore,
        signer: UrlSigner,
        config: ServiceConfig,
        inputs: InputResolver,
    ) -> None:
        self.store = store
        self.card = card
        self.blobs = blobs
        self.signer = signer
        self.config = config
        self.inputs = inputs
        self._auth_cache: dict[str, tuple[str, float]] = {}

    # -- auth --------------------------------------------------------------------------------

    async def authenticate(self, api_key: Any) -> str:
        """The owner id of a valid key; `AuthError` otherwise."""
        if not isinstance(api_key, str) or not api_key:
            raise AuthError("Missing API key.", code="missingApiKey", parameter="apiKey")
        digest = hash_key(api_key)
        cached = self._auth_cache.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _AUTH_CACHE_S:
            return cached[0]
        owner = await self.store.find_api_key(digest)
        if owner is None:
            self._auth_cache.pop(digest, None)
            raise AuthError("Invalid API key.", parameter="apiKey")
        self._auth_cache[digest] = (owner, now)
        return owner

    # -- videoInference ----------------------------------------------------------------------

    def price(self, request: VideoRequest) -> float:
        """Per-result cost of a resolved request (its size and length are known)."""
        assert request.width is not None  # noqa: S101 - resolved at submit
        assert request.height is not None  # noqa: S101
        size = self.card.size(request.width, request.height)
        assert size is not None  # noqa: S101 - validated, or chosen from the card
        tier = request.resolution if request.mode is Mode.I2V and request.resolution else size.tier
        source = Fraction(request.source_seconds) if request.source_seconds else None
        if request.duration_s is not None:
            seconds = Fraction(request.duration_s)
        else:
            # Video-to-video without `duration` bills the input's exact length (the page's
            # 202-frame 30 fps example costs $0.404), though 24 fps rounds the file's.
            assert source is not None  # noqa: S101 - resolved from the input video
            seconds = source
        cost = quote(
            self.card,
            tier=tier,
            output_seconds=seconds,
            image_input=request.mode is Mode.I2V,
            input_video_seconds=source,
        )
        return as_float(cost)

    async def submit_video(self, owner: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and queue a videoInference task; return its acknowledgement.

        The ack deliberately carries no videoUUID: the legacy SDK reads one there as a
        finished result.
        """
        task_uuid = check_task_uuid(task.get("taskUUID"))
        request = validate_video_task(task, self.card, self.config.limits)
        # Idempotency is judged on the request as sent, before its inputs are resolved.
        request_hash = hashlib.sha256(request.to_json().encode()).hexdigest()
        ack = {"taskType": "videoInference", "taskUUID": task_uuid}
        if request.frame_image or request.reference_images or request.video:
            # A retried submit must not fetch and store its inputs again; create_job alone
            # settles idempotency for text-to-video (one read less on the hot path).
            existing = await self.store.get_job(task_uuid, owner)
            if existing is not None:
                if existing[0].request_hash == request_hash:
                    return ack  # the job is already queued
                raise Conflict(
                    f"taskUUID {task_uuid} was already used for a different request.",
                    parameter="taskUUID",
                )
            request = await self.inputs.resolve(owner, request)
        base = request.seed if request.seed is not None else secrets.randbelow(2**32) + 1
        n = request.number_results
        cost = self.price(request)
        await self.store.create_job(
            NewJob(
                task_uuid=task_uuid,
                owner=owner,
                task_type="videoInference",
                model=request.model,
                request=request.to_json(),
                request_hash=request_hash,
                max_attempts=self.config.max_attempts,
                video_uuids=[str(uuid.uuid4()) for _ in range(n)],
                seeds=[1 + (base + i - 1) % SEED_MAX for i in range(n)],  # seeds are 1..SEED_MAX
                costs=[cost] * n,
            )
        )
        return ack

    async def job(self, owner: str, task_uuid: str) -> tuple[Job, list[Any]]:
        """A job and its results, or NotFound."""
        found = await self.store.get_job(task_uuid, owner)
        if found is None:
            raise NotFound(f"No task found with taskUUID {task_uuid}.", parameter="taskUUID")
        return found

    async def get_response(
        self, owner: str, task_uuid: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Runware getResponse: one item per result, errors apart."""
        task_uuid = check_task_uuid(task_uuid)
        found = await self.store.get_job_and_place(task_uuid, owner)
        if found is None:
            raise NotFound(f"No task found with taskUUID {task_uuid}.", parameter="taskUUID")
        job, results, ahead = found
        data, errors = job_items(job, results, self.signer)
        if ahead is not None:
            # How many jobs run first: progress a client can show before generation starts.
            for item in data:
                item["queuePosition"] = ahead
        request = VideoRequest.from_json(job.request)
        if request.upload_endpoint is not None:
            await self._add_upload_status(task_uuid, data)
        return data, errors

    async def _add_upload_status(self, task_uuid: str, items: list[dict[str, Any]]) -> None:
        """Each item's PUT to the user's `uploadEndpoint`: pending, delivered or failed."""
        uploads: dict[str, dict[str, object]] = {}
        for row in await self.store.outbox_status(task_uuid):
            if row["kind"] == "upload":
                uploads[json.loads(str(row["payload"]))["videoUUID"]] = row
        for item in items:
            upload = uploads.get(item["videoUUID"])
            if upload is not None:
                item["uploadStatus"] = upload["status"]
                if upload["status"] == "failed":
                    item["uploadError"] = upload["last_error"]

    async def deliveries(self, owner: str, task_uuid: Any) -> list[dict[str, object]]:
        """The webhook and upload deliveries of one of the owner's tasks."""
        task_uuid = check_task_uuid(task_uuid)
        await self.job(owner, task_uuid)
        return await self.store.outbox_status(task_uuid)

    async def cancel(self, owner: str, task_uuid: str) -> Job:
        """Cancel a job (queued: at once; running: within one step)."""
        return await self.store.request_cancel(check_task_uuid(task_uuid), owner)

    # -- media uploads -----------------------------------------------------------------------

    async def upload_image(self, owner: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """Runware imageUpload: store an image, return its imageUUID and a signed imageURL."""
        task_uuid = check_task_uuid(task.get("taskUUID"))
        reject_unknown(task, frozenset({"taskType", "taskUUID", "image"}))
        value = get_str(task, "image", required=True)
        assert value is not None  # noqa: S101
        item = await self._store_image(owner, value, "image")
        return {
            "taskType": "imageUpload",
            "taskUUID": task_uuid,
            "imageUUID": item.media_uuid,
            "imageURL": self._media_url(item),
        }

    async def media_storage(self, owner: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """Runware mediaStorage: `upload` (image) or `delete`."""
        task_uuid = check_task_uuid(task.get("taskUUID"))
        reject_unknown(task, frozenset({"taskType", "taskUUID", "operation", "media"}))
        operation = get_choice(task, "operation", ("upload", "delete")) or "upload"
        value = get_str(task, "media", required=True)
        assert value is not None  # noqa: S101
        base = {"taskType": "mediaStorage", "taskUUID": task_uuid, "operation": operation}
        if operation == "delete":
            removed = await self.store.delete_media(value.strip().lower(), owner)
            if removed is None:
                raise NotFound(
                    f"No media with UUID {value}.", code="mediaNotFound", parameter="media"
                )
            self.blobs.delete(removed.blob_key)
            return {**base, "mediaUUID": removed.media_uuid}
        item = await self._store_upload(owner, value, "media", kinds=("image", "video"))
        return {**base, "mediaUUID": item.media_uuid, "mediaURL": self._media_url(item)}

    async def _store_image(self, owner: str, value: str, parameter: str) -> MediaItem:
        return await self._store_upload(owner, value, parameter, kinds=("image",))

    async def _store_upload(
        self, owner: str, value: str, parameter: str, kinds: tuple[Kind, ...]
    ) -> MediaItem:
        source = classify(value)
        if source.kind not in (SourceKind.DATA_URI, SourceKind.BASE64):
            raise InvalidInput(
                f"{parameter}: upload the media as a data URI or base64.",
                code="unsupportedMediaSource",
                parameter=parameter,
            )
        data, mime = decode_inline(source, parameter, self.config.max_upload_bytes)
        # Images are tried first unless the data URI says video; a file that is neither
        # reports why it is not an image (the common case).
        order = sorted(kinds, key=lambda k: 0 if mime and mime.startswith(k) else 1)
        first_error: MediaError | None = None
        for kind in order:
            try:
                return await self.inputs.store_upload(owner, data, kind, parameter)
            except MediaError as exc:
                first_error = first_error or exc
        assert first_error is not None  # noqa: S101 - kinds is never empty
        raise first_error

    def _media_url(self, item: MediaItem) -> str:
        expires = item.expires_at if item.expires_at is not None else time.time() + 3600
        return self.signer.url(media_path(item.blob_key), expires)

    # -- listing and deleting (the OpenAI-compatible /v1/videos) -----------------------------

    async def list_jobs(
        self, owner: str, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[tuple[Job, list[Any]]], bool]:
        """A page of the owner's jobs with their results, and whether more follow."""
        rows = await self.store.list_jobs(owner, after, limit + 1, descending=descending)
        return rows[:limit], len(rows) > limit

    async def delete_job(self, owner: str, task_uuid: str) -> Job:
        """Delete a job that is not running, its results and their files; NotFound or
        Conflict (running) otherwise. Its inputs stay until their own expiry (another task
        may use them)."""
        removed = await self.store.delete_job(task_uuid, owner)
        if removed is None:
            raise NotFound(f"No task found with taskUUID {task_uuid}.", parameter="taskUUID")
        job, results = removed
        for result in results:
            if result.blob_key is not None:
                self.blobs.delete(result.blob_key)
        return job

"""The service: what every front door calls. Validate → price → persist; read back; cancel."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import anyio

from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.items import job_items, media_path
from openimagine.delivery.signing import UrlSigner
from openimagine.domain.jobs import Job
from openimagine.domain.params import Mode, VideoRequest
from openimagine.errors import AuthError, InvalidInput, NotFound
from openimagine.keys import hash_key
from openimagine.media.images import inspect_image
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
    max_image_pixels: int
    media_ttl_s: int


class VideoService:
    """Submit, poll, cancel and upload, independent of the transport."""

    def __init__(
        self,
        store: TaskStore,
        card: ModelCard,
        blobs: LocalBlobStore,
        signer: UrlSigner,
        config: ServiceConfig,
    ) -> None:
        self.store = store
        self.card = card
        self.blobs = blobs
        self.signer = signer
        self.config = config
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

    def price(self, request: VideoRequest) -> float | None:
        """Per-result cost, when it is known at submit (V2V waits for its input's length)."""
        if request.mode is Mode.V2V or request.duration_s is None:
            return None
        if request.mode is Mode.I2V:
            tier = request.resolution or self.card.default_resolution
        else:
            assert request.width is not None  # noqa: S101 - T2V always has a size
            assert request.height is not None  # noqa: S101
            size = self.card.size(request.width, request.height)
            assert size is not None  # noqa: S101 - validated
            tier = size.tier
        cost = quote(
            self.card,
            tier=tier,
            output_seconds=Fraction(request.duration_s),
            image_input=request.mode is Mode.I2V,
        )
        return as_float(cost)

    async def submit_video(self, owner: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and queue a videoInference task; return its acknowledgement.

        The ack deliberately carries no videoUUID: the legacy SDK reads one there as a
        finished result.
        """
        task_uuid = check_task_uuid(task.get("taskUUID"))
        request = validate_video_task(task, self.card, self.config.limits)
        canonical = request.to_json()
        base = request.seed if request.seed is not None else secrets.randbelow(2**32) + 1
        n = request.number_results
        cost = self.price(request)
        await self.store.create_job(
            NewJob(
                task_uuid=task_uuid,
                owner=owner,
                task_type="videoInference",
                model=request.model,
                request=canonical,
                request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                max_attempts=self.config.max_attempts,
                video_uuids=[str(uuid.uuid4()) for _ in range(n)],
                seeds=[1 + (base + i - 1) % SEED_MAX for i in range(n)],  # seeds are 1..SEED_MAX
                costs=[cost] * n,
            )
        )
        return {"taskType": "videoInference", "taskUUID": task_uuid}

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
        job, results = await self.job(owner, task_uuid)
        return job_items(job, results, self.signer)

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
        item = await self._store_image(owner, value, "media")
        return {**base, "mediaUUID": item.media_uuid, "mediaURL": self._media_url(item)}

    async def _store_image(self, owner: str, value: str, parameter: str) -> MediaItem:
        source = classify(value)
        if source.kind not in (SourceKind.DATA_URI, SourceKind.BASE64):
            raise InvalidInput(
                f"{parameter}: upload the image as a data URI or base64.",
                code="unsupportedMediaSource",
                parameter=parameter,
            )
        data, _mime = decode_inline(source, parameter, self.config.max_upload_bytes)
        info = await anyio.to_thread.run_sync(
            inspect_image, data, parameter, self.config.max_image_pixels
        )
        media_uuid = str(uuid.uuid4())
        key = f"inputs/{media_uuid}{info.extension}"
        await anyio.to_thread.run_sync(self.blobs.put_bytes, key, data)
        now = time.time()
        item = MediaItem(
            media_uuid=media_uuid,
            owner=owner,
            kind="image",
            blob_key=key,
            content_type=info.content_type,
            size_bytes=len(data),
            width=info.width,
            height=info.height,
            duration_s=None,
            created_at=now,
            expires_at=now + self.config.media_ttl_s,
        )
        await self.store.add_media(item)
        return item

    def _media_url(self, item: MediaItem) -> str:
        expires = item.expires_at if item.expires_at is not None else time.time() + 3600
        return self.signer.url(media_path(item.blob_key), expires)

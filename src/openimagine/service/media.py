"""Inputs stored for a key: uploads (imageUpload, mediaStorage), and the media a task names,
fetched or decoded and checked before the task is queued.

Lifetime: an upload is kept `media_ttl_s` after its upload or its last use by a task (as on
Runware); what a task brings as a URL, data URI or base64 is kept `fetched_ttl_s` after the
submit. The sweeper deletes expired inputs, except those a queued or running job still reads.
A key's stored inputs are capped in bytes, and decoding runs in threads, a few at a time.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence

import anyio

from openimagine.config import InputSettings
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.domain.records import MediaItem, MediaKind
from openimagine.domain.requests import MediaInput
from openimagine.domain.views import MediaView
from openimagine.errors import MediaError, NotFound, QuotaExceeded
from openimagine.media.fetch import fetch
from openimagine.media.images import ImageInfo, inspect_image
from openimagine.media.netguard import IPNetwork
from openimagine.media.sources import Source, SourceKind, classify, decode_inline
from openimagine.media.videos import VideoInfo, inspect_video
from openimagine.store.protocols import JobStore, MediaStore

_UPLOADED_WITH = {MediaKind.IMAGE: "imageUpload", MediaKind.VIDEO: "mediaStorage"}
# An input a submit has taken is kept at least this long, however short its TTL: longer than
# resolving one task's inputs takes (each fetch is bounded by `fetch_timeout_s`), so none can
# expire before its job is stored; from then on the sweeper keeps it while the job needs it.
SUBMIT_GRACE_S = 600.0


class MediaService:
    """Checks and stores input media; finds it again by UUID.

    Args:
        media: The store's media part.
        jobs: The store's job part (earlier results used as inputs).
        blobs: Where input files live.
        limits: Sizes, lifetimes and decode concurrency of inputs.
        allowed_networks: Private networks that input URLs may reach.
        max_stored_bytes: Bytes of inputs one key may keep (0: no cap).
        clock: Wall time, for expiries.
    """

    def __init__(
        self,
        media: MediaStore,
        jobs: JobStore,
        blobs: BlobStore,
        limits: InputSettings,
        allowed_networks: Sequence[IPNetwork] = (),
        *,
        max_stored_bytes: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.media = media
        self.jobs = jobs
        self.blobs = blobs
        self.limits = limits
        self.allowed_networks = tuple(allowed_networks)
        self.max_stored_bytes = max_stored_bytes
        self.clock = clock
        # perf: a decoded 40 MP image takes 160 MB; a few decodes at a time, in their own
        # threads, bound the memory and the threads that concurrent submits take.
        self._decoding = anyio.CapacityLimiter(limits.decode_concurrency)

    # -- uploads ---------------------------------------------------------------------------

    async def upload(
        self,
        owner: str,
        data: bytes,
        kinds: Sequence[MediaKind],
        parameter: str,
        declared_type: str | None = None,
    ) -> MediaView:
        """Check `data` as one of `kinds` and store it; the URL expires with the media.

        Kinds are tried in order, the one `declared_type` names first; bytes that are none
        of them report why they are not the first kind tried. `QuotaExceeded` (nothing
        stored) when the key's inputs would pass `max_stored_bytes`.
        """
        await self._check_room(owner, len(data))
        order = sorted(
            kinds, key=lambda k: 0 if declared_type and declared_type.startswith(k) else 1
        )
        first_error: MediaError | None = None
        for kind in order:
            try:
                item = await self._store(owner, data, kind, parameter, self.limits.media_ttl_s)
            except MediaError as exc:
                first_error = first_error or exc
            else:
                return MediaView(item, self.url(item))
        assert first_error is not None  # noqa: S101 - kinds is never empty
        raise first_error

    async def delete(self, owner: str, media_uuid: str, parameter: str) -> MediaItem:
        """Remove one of the owner's media and its file."""
        removed = await self.media.delete(media_uuid.strip().lower(), owner)
        if removed is None:
            raise NotFound(
                f"No media with UUID {media_uuid}.", code="mediaNotFound", parameter=parameter
            )
        await anyio.to_thread.run_sync(self.blobs.delete, removed.blob_key)
        return removed

    def url(self, item: MediaItem) -> str:
        """A URL to a stored input, valid while it is kept (an hour for one without end)."""
        expires = item.expires_at if item.expires_at is not None else self.clock() + 3600
        return self.blobs.url(item.blob_key, expires)

    # -- what a task names -----------------------------------------------------------------

    async def load(self, owner: str, source: MediaInput, kind: MediaKind) -> MediaItem:
        """The stored media a task's input names, fetching, decoding and checking it first
        unless it is the UUID of media already stored (or, for video, of a result)."""
        classified = classify(source.source)
        if classified.kind is SourceKind.UUID:
            return await self._by_uuid(owner, classified.value, kind, source.parameter)
        if classified.kind is SourceKind.URL and (own := _own_uuid(self.blobs, classified.value)):
            # A URL this server signed (a result's `videoURL`, an upload's URL): the file is
            # here already, and fetching it would only meet the guard against loopback URLs.
            return await self._by_uuid(owner, own, kind, source.parameter)
        await self._check_room(owner, 1)  # a key at its cap fetches and decodes nothing
        data = await self._bytes(classified, source.parameter, kind)
        keep = max(self.limits.fetched_ttl_s, SUBMIT_GRACE_S)
        return await self._store(owner, data, kind, source.parameter, keep)

    async def _bytes(self, source: Source, parameter: str, kind: MediaKind) -> bytes:
        """The bytes of a URL (fetched) or inline (decoded, in a thread) input."""
        limit = (
            self.limits.max_image_bytes if kind is MediaKind.IMAGE else self.limits.max_video_bytes
        )
        if source.kind is SourceKind.URL:
            return await fetch(
                source.value,
                parameter,
                limit,
                timeout_s=self.limits.fetch_timeout_s,
                max_redirects=self.limits.max_redirects,
                allowed_networks=self.allowed_networks,
            )
        data, _mime = await anyio.to_thread.run_sync(
            decode_inline, source, parameter, limit, limiter=self._decoding
        )
        return data

    async def _by_uuid(
        self, owner: str, media_uuid: str, kind: MediaKind, parameter: str
    ) -> MediaItem:
        # A use keeps an upload `media_ttl_s` longer; an expired one is gone for good.
        keep = max(self.limits.media_ttl_s, SUBMIT_GRACE_S)
        item = await self.media.touch(media_uuid, owner, keep)
        if item is None and kind is MediaKind.VIDEO:
            item = await self._from_result(owner, media_uuid, parameter)
        if (
            item is None
            or item.kind is not kind
            or await anyio.to_thread.run_sync(self.blobs.size, item.blob_key) is None
        ):
            raise NotFound(
                f"{parameter}: no {kind} with UUID {media_uuid} (upload it first with "
                f"{_UPLOADED_WITH[kind]}, or use a URL; uploads expire "
                f"{_duration(self.limits.media_ttl_s)} after their last use).",
                code="mediaNotFound",
                parameter=parameter,
            )
        return item

    async def _from_result(self, owner: str, video_uuid: str, parameter: str) -> MediaItem | None:
        """An earlier result of this owner, by its videoUUID, as an input video."""
        result = await self.jobs.finished_result(video_uuid)
        if result is None or result.blob_key is None:
            return None
        if await self.jobs.get(result.task_uuid, owner) is None:
            return None
        key = result.blob_key
        try:
            info, size = await anyio.to_thread.run_sync(
                self._inspect_blob, key, parameter, limiter=self._decoding
            )
        except BlobNotFound:
            return None
        return self._item(owner, MediaKind.VIDEO, info.content_type, size, info, 0, key=key)

    def _inspect_blob(self, key: str, parameter: str) -> tuple[VideoInfo, int]:
        with self.blobs.as_file(key) as path:
            return inspect_video(path, parameter, self.limits), path.stat().st_size

    # -- storing ---------------------------------------------------------------------------

    async def _store(
        self, owner: str, data: bytes, kind: MediaKind, parameter: str, keep_s: float
    ) -> MediaItem:
        """Check `data` as `kind` (in a decoding thread) and, when it passes, store it as the
        owner's media, kept `keep_s`; `QuotaExceeded` (nothing kept) past the owner's cap."""
        store = self._store_image if kind is MediaKind.IMAGE else self._store_video
        item = await anyio.to_thread.run_sync(
            store, owner, data, parameter, keep_s, limiter=self._decoding
        )
        if not await self.media.add(item, max_owner_bytes=self.max_stored_bytes):
            await anyio.to_thread.run_sync(self.blobs.delete, item.blob_key)
            raise await self._storage_full(owner, item.size_bytes)
        return item

    def _store_image(self, owner: str, data: bytes, parameter: str, keep_s: float) -> MediaItem:
        image = inspect_image(data, parameter, self.limits.max_image_pixels)
        item = self._item(owner, MediaKind.IMAGE, image.content_type, len(data), image, keep_s)
        self.blobs.put_bytes(item.blob_key, data)
        return item

    def _store_video(self, owner: str, data: bytes, parameter: str, keep_s: float) -> MediaItem:
        # PyAV reads a file; the scratch file is moved into the store when accepted.
        path = self.blobs.scratch_path(".input")
        try:
            path.write_bytes(data)
            video = inspect_video(path, parameter, self.limits)
            item = self._item(owner, MediaKind.VIDEO, video.content_type, len(data), video, keep_s)
            self.blobs.put_file(item.blob_key, path)
        finally:
            path.unlink(missing_ok=True)
        return item

    async def _check_room(self, owner: str, size: int) -> None:
        """`QuotaExceeded` when `size` more bytes would take the owner past its cap (cheap,
        before anything is fetched or decoded; `MediaStore.add` checks again, exactly)."""
        if not self.max_stored_bytes:
            return
        used, _ = await self.media.stored(owner)
        if used + size > self.max_stored_bytes:
            raise await self._storage_full(owner, size)

    async def _storage_full(self, owner: str, size: int) -> QuotaExceeded:
        used, first_expiry = await self.media.stored(owner)
        wait = (first_expiry - self.clock()) if first_expiry is not None else 3600.0
        return QuotaExceeded(
            f"This key keeps {used:,} bytes of inputs; {size:,} more would pass its limit "
            f"of {self.max_stored_bytes:,} bytes. Delete some (mediaStorage, operation "
            "delete), or retry once older ones expire.",
            code="storageLimitExceeded",
            retry_after_s=max(1, math.ceil(wait)),
            limit=self.max_stored_bytes,
        )

    def _item(
        self,
        owner: str,
        kind: MediaKind,
        content_type: str,
        size: int,
        info: ImageInfo | VideoInfo,
        keep_s: float,
        key: str | None = None,
    ) -> MediaItem:
        media_uuid = str(uuid.uuid4())
        now = self.clock()
        return MediaItem(
            media_uuid=media_uuid,
            owner=owner,
            kind=kind,
            blob_key=key or f"inputs/{media_uuid}{_extension(info)}",
            content_type=content_type,
            size_bytes=size,
            width=info.width,
            height=info.height,
            duration_s=float(info.seconds) if isinstance(info, VideoInfo) else None,
            created_at=now,
            expires_at=now + keep_s,
        )


def _extension(info: ImageInfo | VideoInfo) -> str:
    if isinstance(info, ImageInfo):
        return info.extension
    return ".webm" if info.content_type == "video/webm" else ".mp4"


def _duration(seconds: float) -> str:
    """`seconds` as people say it: 30 days, 2 hours, 45 s."""
    for unit, name in ((86400, "days"), (3600, "hours"), (60, "minutes")):
        if seconds >= 2 * unit:
            return f"{seconds / unit:g} {name}"
    return f"{seconds:g} s"


def _own_uuid(blobs: BlobStore, url: str) -> str | None:
    """The UUID a file of this server is named after (`videos/…/<videoUUID>.mp4`,
    `inputs/<mediaUUID>.png`), when `url` is one of its valid signed URLs."""
    key = blobs.key_of_url(url)
    if key is None:
        return None
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    try:
        return str(uuid.UUID(stem))
    except ValueError:
        return None

"""Inputs stored for a key: uploads (imageUpload, mediaStorage), and the media a task names,
fetched or decoded and checked before the task is queued."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import anyio

from openimagine.config import InputSettings
from openimagine.delivery.blobs import BlobNotFound, BlobStore
from openimagine.domain.records import MediaItem, MediaKind
from openimagine.domain.requests import MediaInput
from openimagine.domain.views import MediaView
from openimagine.errors import MediaError, NotFound
from openimagine.media.fetch import fetch
from openimagine.media.images import ImageInfo, inspect_image
from openimagine.media.netguard import IPNetwork
from openimagine.media.sources import SourceKind, classify, decode_inline
from openimagine.media.videos import VideoInfo, inspect_video
from openimagine.store.protocols import JobStore, MediaStore

_UPLOADED_WITH = {MediaKind.IMAGE: "imageUpload", MediaKind.VIDEO: "mediaStorage"}


class MediaService:
    """Checks and stores input media; finds it again by UUID."""

    def __init__(
        self,
        media: MediaStore,
        jobs: JobStore,
        blobs: BlobStore,
        limits: InputSettings,
        allowed_networks: Sequence[IPNetwork] = (),
    ) -> None:
        self.media = media
        self.jobs = jobs
        self.blobs = blobs
        self.limits = limits
        self.allowed_networks = tuple(allowed_networks)

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
        of them report why they are not the first kind tried.
        """
        order = sorted(
            kinds, key=lambda k: 0 if declared_type and declared_type.startswith(k) else 1
        )
        first_error: MediaError | None = None
        for kind in order:
            try:
                item = await self._store(owner, data, kind, parameter)
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
        expires = item.expires_at if item.expires_at is not None else time.time() + 3600
        return self.blobs.url(item.blob_key, expires)

    # -- what a task names -----------------------------------------------------------------

    async def load(self, owner: str, source: MediaInput, kind: MediaKind) -> MediaItem:
        """The stored media a task's input names, fetching, decoding and checking it first
        unless it is the UUID of media already stored (or, for video, of a result)."""
        classified = classify(source.source)
        if classified.kind is SourceKind.UUID:
            return await self._by_uuid(owner, classified.value, kind, source.parameter)
        limit = (
            self.limits.max_image_bytes if kind is MediaKind.IMAGE else self.limits.max_video_bytes
        )
        if classified.kind is SourceKind.URL:
            data = await fetch(
                classified.value,
                source.parameter,
                limit,
                timeout_s=self.limits.fetch_timeout_s,
                max_redirects=self.limits.max_redirects,
                allowed_networks=self.allowed_networks,
            )
        else:
            data, _mime = decode_inline(classified, source.parameter, limit)
        return await self._store(owner, data, kind, source.parameter)

    async def _by_uuid(
        self, owner: str, media_uuid: str, kind: MediaKind, parameter: str
    ) -> MediaItem:
        item = await self.media.get(media_uuid, owner)
        if item is None and kind is MediaKind.VIDEO:
            item = await self._from_result(owner, media_uuid, parameter)
        if (
            item is None
            or item.kind is not kind
            or await anyio.to_thread.run_sync(self.blobs.size, item.blob_key) is None
        ):
            raise NotFound(
                f"{parameter}: no {kind} with UUID {media_uuid} (upload it first with "
                f"{_UPLOADED_WITH[kind]}, or use a URL).",
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
            info, size = await anyio.to_thread.run_sync(self._inspect_blob, key, parameter)
        except BlobNotFound:
            return None
        return self._item(owner, MediaKind.VIDEO, info.content_type, size, info, key=key)

    def _inspect_blob(self, key: str, parameter: str) -> tuple[VideoInfo, int]:
        with self.blobs.as_file(key) as path:
            return inspect_video(path, parameter, self.limits), path.stat().st_size

    async def _store(self, owner: str, data: bytes, kind: MediaKind, parameter: str) -> MediaItem:
        """Check `data` as `kind` and, when it passes, store it as the owner's media."""
        if kind is MediaKind.IMAGE:
            image = await anyio.to_thread.run_sync(
                inspect_image, data, parameter, self.limits.max_image_pixels
            )
            item = self._item(owner, kind, image.content_type, len(data), image)
            await anyio.to_thread.run_sync(self.blobs.put_bytes, item.blob_key, data)
        else:
            item = await anyio.to_thread.run_sync(self._store_video, owner, data, parameter)
        await self.media.add(item)
        return item

    def _store_video(self, owner: str, data: bytes, parameter: str) -> MediaItem:
        # PyAV reads a file; the scratch file is moved into the store when accepted.
        path = self.blobs.scratch_path(".input")
        try:
            path.write_bytes(data)
            video = inspect_video(path, parameter, self.limits)
            item = self._item(owner, MediaKind.VIDEO, video.content_type, len(data), video)
            self.blobs.put_file(item.blob_key, path)
        finally:
            path.unlink(missing_ok=True)
        return item

    def _item(
        self,
        owner: str,
        kind: MediaKind,
        content_type: str,
        size: int,
        info: ImageInfo | VideoInfo,
        key: str | None = None,
    ) -> MediaItem:
        media_uuid = str(uuid.uuid4())
        now = time.time()
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
            expires_at=now + self.limits.media_ttl_s,
        )


def _extension(info: ImageInfo | VideoInfo) -> str:
    if isinstance(info, ImageInfo):
        return info.extension
    return ".webm" if info.content_type == "video/webm" else ".mp4"

"""A task's media inputs, resolved at submit: fetched or decoded, checked, stored as media.

Every image or video a task names (a UUID, an http(s) URL, a data URI or bare base64) is
turned into a stored blob before the task is queued, so a bad input is refused with an
error naming its parameter while the user waits for the acknowledgement, the worker never
touches the network, and the sizes and prices that depend on the input are known at submit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

import anyio
import httpx

from openimagine.__about__ import __version__
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.netguard import BlockedAddress, IPNetwork, check_url
from openimagine.domain.params import VideoRequest, blob_ref
from openimagine.errors import InvalidInput, MediaError, NotFound
from openimagine.media.images import inspect_image
from openimagine.media.sources import Source, SourceKind, classify, decode_inline
from openimagine.media.videos import VideoInfo, VideoLimits, inspect_video
from openimagine.models.card import ModelCard
from openimagine.store.base import MediaItem, TaskStore

Kind = Literal["image", "video"]


@dataclass(frozen=True, slots=True)
class InputConfig:
    """Limits on inputs and on fetching them."""

    max_image_bytes: int
    max_image_pixels: int
    max_video_bytes: int
    video: VideoLimits
    fetch_timeout_s: float
    max_redirects: int
    media_ttl_s: int
    allowed_networks: Sequence[IPNetwork] = ()


async def fetch(url: str, parameter: str, max_bytes: int, config: InputConfig) -> bytes:
    """GET `url` with the SSRF guard applied to it and to every redirect, a timeout, and a
    size cap enforced while reading."""
    async with httpx.AsyncClient(
        timeout=config.fetch_timeout_s,
        follow_redirects=False,
        headers={"User-Agent": f"openimagine/{__version__}"},
    ) as client:
        for _ in range(config.max_redirects + 1):
            try:
                await check_url(url, config.allowed_networks)
            except BlockedAddress as exc:
                raise MediaError(
                    f"{parameter}: {exc}", code="mediaFetchBlocked", parameter=parameter
                ) from None
            try:
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code != 200:
                        raise MediaError(
                            f"{parameter}: fetching {url} gave HTTP {response.status_code}.",
                            code="mediaFetchFailed",
                            parameter=parameter,
                        )
                    return await _read_capped(response, parameter, max_bytes)
            except httpx.HTTPError as exc:
                raise MediaError(
                    f"{parameter}: fetching {url} failed ({type(exc).__name__}).",
                    code="mediaFetchFailed",
                    parameter=parameter,
                ) from None
    raise MediaError(
        f"{parameter}: more than {config.max_redirects} redirects.",
        code="mediaFetchFailed",
        parameter=parameter,
    )


async def _read_capped(response: httpx.Response, parameter: str, max_bytes: int) -> bytes:
    too_large = MediaError(
        f"{parameter}: the input is larger than the {max_bytes} byte limit.",
        code="mediaTooLarge",
        parameter=parameter,
        max=max_bytes,
    )
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class InputResolver:
    """Resolves the media of a validated request and fills in what depends on it."""

    def __init__(
        self, store: TaskStore, blobs: LocalBlobStore, card: ModelCard, config: InputConfig
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.card = card
        self.config = config

    async def resolve(self, owner: str, request: VideoRequest) -> VideoRequest:
        """The request with every input replaced by a `blob_ref` to its stored file and, for
        image- and video-to-video, the output size (nearest the input's aspect) and length."""
        if request.frame_image is not None:
            image = await self.load(owner, request.frame_image, "image", "inputs.frameImages")
            request = replace(request, frame_image=blob_ref(image.blob_key))
            if request.width is None and image.width and image.height:
                tier = request.resolution or self.card.default_resolution
                size = self.card.nearest_size(tier, image.width, image.height)
                request = replace(request, width=size.width, height=size.height)
        if request.reference_images:
            refs = []
            for i, value in enumerate(request.reference_images):
                item = await self.load(owner, value, "image", f"inputs.referenceImages[{i}]")
                refs.append(blob_ref(item.blob_key))
            request = replace(request, reference_images=tuple(refs))
        if request.video is not None:
            request = await self._resolve_video(owner, request, request.video)
        return request

    async def _resolve_video(self, owner: str, request: VideoRequest, value: str) -> VideoRequest:
        parameter = "inputs.video"
        video = await self.load(owner, value, "video", parameter)
        # load() sets these for every video.
        assert video.width is not None  # noqa: S101
        assert video.height is not None  # noqa: S101
        assert video.duration_s is not None  # noqa: S101
        size = self.card.nearest_size(
            self.card.tier_for_source(video.width, video.height), video.width, video.height
        )
        source_s = Fraction(video.duration_s).limit_denominator(1000)
        if request.duration_s is None:
            lo, hi = self.card.duration.min, self.card.duration.max
            if not lo <= source_s <= hi:
                raise InvalidInput(
                    f"{parameter}: without `duration` the output has the input's length, "
                    f"which must be {lo}-{hi} s; this video is {float(source_s):.2f} s.",
                    code="unsupportedDuration",
                    parameter="duration",
                    min=lo,
                    max=hi,
                )
            frames = max(1, round(source_s * request.fps))
        else:
            frames = request.duration_s * request.fps
        return replace(
            request,
            video=blob_ref(video.blob_key),
            width=size.width,
            height=size.height,
            num_frames=frames,
            source_seconds=str(source_s),
        )

    async def load(self, owner: str, value: str, kind: Kind, parameter: str) -> MediaItem:
        """The stored media a value names, fetching, decoding and checking it if needed."""
        source = classify(value)
        if source.kind is SourceKind.UUID:
            return await self._by_uuid(owner, source.value, kind, parameter)
        data = await self._bytes(source, kind, parameter)
        return await self._store(owner, data, kind, parameter)

    async def store_upload(self, owner: str, data: bytes, kind: Kind, parameter: str) -> MediaItem:
        """Check and store uploaded bytes (imageUpload, mediaStorage)."""
        return await self._store(owner, data, kind, parameter)

    async def _bytes(self, source: Source, kind: Kind, parameter: str) -> bytes:
        limit = self.config.max_image_bytes if kind == "image" else self.config.max_video_bytes
        if source.kind is SourceKind.URL:
            return await fetch(source.value, parameter, limit, self.config)
        data, _mime = decode_inline(source, parameter, limit)
        return data

    async def _by_uuid(self, owner: str, media_uuid: str, kind: Kind, parameter: str) -> MediaItem:
        item = await self.store.get_media(media_uuid, owner)
        if item is None and kind == "video":
            item = await self._from_result(owner, media_uuid, parameter)
        if item is None or item.kind != kind or self.blobs.path(item.blob_key) is None:
            raise NotFound(
                f"{parameter}: no {kind} with UUID {media_uuid} (upload it first with "
                f"{'imageUpload' if kind == 'image' else 'mediaStorage'}, or use a URL).",
                code="mediaNotFound",
                parameter=parameter,
            )
        return item

    async def _from_result(self, owner: str, video_uuid: str, parameter: str) -> MediaItem | None:
        """An earlier result of this owner, by its videoUUID, as an input video."""
        result = await self.store.get_result(video_uuid)
        if result is None or result.blob_key is None:
            return None
        found = await self.store.get_job(result.task_uuid, owner)
        path = self.blobs.path(result.blob_key) if found is not None else None
        if path is None:
            return None
        info = await anyio.to_thread.run_sync(inspect_video, path, parameter, self.config.video)
        size = (await anyio.Path(path).stat()).st_size
        return self._video_item(owner, info, size, key=result.blob_key)

    async def _store(self, owner: str, data: bytes, kind: Kind, parameter: str) -> MediaItem:
        """Check `data` as `kind` and, when it passes, store it as the owner's media."""
        if kind == "image":
            image = await anyio.to_thread.run_sync(
                inspect_image, data, parameter, self.config.max_image_pixels
            )
            item = self._item(
                owner, "image", image.extension, image.content_type, len(data), image.width,
                image.height, None,
            )  # fmt: skip
            await anyio.to_thread.run_sync(self.blobs.put_bytes, item.blob_key, data)
        else:
            # PyAV reads a file; the scratch file is moved into the store when accepted.
            path = self.blobs.scratch_path(".input")
            try:
                await anyio.Path(path).write_bytes(data)
                video = await anyio.to_thread.run_sync(
                    inspect_video, path, parameter, self.config.video
                )
                item = self._video_item(owner, video, len(data))
                await anyio.to_thread.run_sync(self.blobs.put_file, item.blob_key, path)
            finally:
                path.unlink(missing_ok=True)
        await self.store.add_media(item)
        return item

    def _video_item(
        self, owner: str, info: VideoInfo, size: int, key: str | None = None
    ) -> MediaItem:
        ext = ".webm" if info.content_type == "video/webm" else ".mp4"
        return self._item(
            owner, "video", ext, info.content_type, size, info.width, info.height,
            float(info.seconds), key,
        )  # fmt: skip

    def _item(
        self,
        owner: str,
        kind: Kind,
        ext: str,
        content_type: str,
        size: int,
        width: int,
        height: int,
        duration_s: float | None,
        key: str | None = None,
    ) -> MediaItem:
        media_uuid = str(uuid.uuid4())
        now = time.time()
        return MediaItem(
            media_uuid=media_uuid,
            owner=owner,
            kind=kind,
            blob_key=key or f"inputs/{media_uuid}{ext}",
            content_type=content_type,
            size_bytes=size,
            width=width,
            height=height,
            duration_s=duration_s,
            created_at=now,
            expires_at=now + self.config.media_ttl_s,
        )

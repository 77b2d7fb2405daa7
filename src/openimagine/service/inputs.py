"""Resolve a validated request into the job a worker runs: inputs stored, exact size and
frame count decided, here and nowhere else.

Every image or video a task names is stored before the task is queued, so a bad one is
refused in the acknowledgement with an error naming its field, workers never touch the
network, and the size and price that depend on an input are known at submit.
"""

from __future__ import annotations

from fractions import Fraction

from openimagine.domain.generation import GenerationJob
from openimagine.domain.records import MediaItem, MediaKind
from openimagine.domain.requests import Mode, VideoRequest
from openimagine.errors import InvalidInput
from openimagine.media.fit import frames_needed
from openimagine.models.card import ModelCard
from openimagine.models.rules import invalid
from openimagine.service.media import MediaService


class InputResolver:
    """`VideoRequest` → `GenerationJob`."""

    def __init__(self, media: MediaService, card: ModelCard) -> None:
        self.media = media
        self.card = card

    def check(self, request: VideoRequest) -> None:
        """Refuse, before anything is fetched, more inputs than the server takes."""
        most = self.media.limits.max_reference_images
        if len(request.reference_images) > most:
            raise invalid(
                "inputs.referenceImages",
                f"Invalid value for inputs.referenceImages: at most {most} images, "
                f"not {len(request.reference_images)}.",
                max=most,
            )

    async def resolve(
        self, owner: str, request: VideoRequest, door: str = "runware"
    ) -> GenerationJob:
        """Store the request's inputs and settle its size and length; `door` is the API it
        came through (its reads answer in that API's shape).

        Image-to-video takes the size of tier `resolution` nearest the image's aspect ratio;
        video-to-video the size nearest the source's aspect at the source's tier, and without
        `duration` the source's length.
        """
        self.check(request)
        size = None if request.width is None else (request.width, request.height or 0)
        num_frames = None
        if request.duration_s is not None:
            num_frames = frames_needed(request.duration_s, self.card.fps)
        frame_image = video = source_seconds = None
        if request.frame_image is not None:
            image = await self.media.load(owner, request.frame_image, MediaKind.IMAGE)
            frame_image = image.blob_key
            tier = request.resolution or self.card.default_resolution
            size = size or self._nearest(tier, image)
        if request.video is not None:
            source = await self.media.load(owner, request.video, MediaKind.VIDEO)
            video = source.blob_key
            size = self._nearest(self._source_tier(source), source)
            source_seconds = Fraction(source.duration_s or 0).limit_denominator(1000)
            if request.mode is Mode.EXTEND:
                num_frames = self._extended_frames(source_seconds, request)
            elif num_frames is None:
                num_frames = self._source_frames(source_seconds, request.video.parameter)
        if size is None or num_frames is None:  # validation gives a size or an input for it
            raise ValueError("a request without a size or length reached the resolver")
        return GenerationJob(
            model=request.model,
            prompt=request.prompt,
            mode=request.mode,
            width=size[0],
            height=size[1],
            num_frames=num_frames,
            fps=self.card.fps,
            duration_s=request.duration_s,
            source_seconds=source_seconds,
            output_format=request.output_format,
            output_quality=request.output_quality,
            ttl_s=request.ttl_s,
            number_results=request.number_results,
            include_cost=request.include_cost,
            safety_mode=request.safety_mode,
            webhook_url=request.webhook_url,
            upload_endpoint=request.upload_endpoint,
            frame_image=frame_image,
            reference_images=await self._references(owner, request),
            video=video,
            door=door,
        )

    async def _references(self, owner: str, request: VideoRequest) -> tuple[str, ...]:
        return tuple(
            [
                (await self.media.load(owner, ref, MediaKind.IMAGE)).blob_key
                for ref in request.reference_images
            ]
        )

    def _nearest(self, tier: str, item: MediaItem) -> tuple[int, int]:
        size = self.card.nearest_size(tier, item.width or 1, item.height or 1)
        return size.width, size.height

    def _source_tier(self, item: MediaItem) -> str:
        return self.card.tier_for_source(item.width or 0, item.height or 0)

    def _extended_frames(self, seconds: Fraction, request: VideoRequest) -> int:
        """An extension's output frames: the input's, then `duration_s` seconds more."""
        limits, added = self.card.extension_input, request.duration_s
        parameter = request.video.parameter if request.video else "video"
        if limits is None or added is None:
            raise invalid(parameter, f"{parameter}: this model does not extend videos.")
        if not limits.min <= seconds <= limits.max:
            raise InvalidInput(
                f"{parameter}: a video to extend must be {limits.min}-{limits.max} s long; "
                f"this one is {float(seconds):.2f} s.",
                code="unsupportedDuration",
                parameter=parameter,
                min=limits.min,
                max=limits.max,
            )
        return max(1, round(seconds * self.card.fps)) + added * self.card.fps

    def _source_frames(self, seconds: Fraction, parameter: str) -> int:
        """The output frame count of a source's length, which must be a legal duration."""
        lo, hi = self.card.duration.min, self.card.duration.max
        if not lo <= seconds <= hi:
            raise InvalidInput(
                f"{parameter}: without `duration` the output has the input's length, "
                f"which must be {lo}-{hi} s; this video is {float(seconds):.2f} s.",
                code="unsupportedDuration",
                parameter="duration",
                min=lo,
                max=hi,
            )
        return max(1, round(seconds * self.card.fps))

"""xAI's gRPC video service, `xai_api.Video`: the door of xAI's Python SDK (`xai-sdk`), which
reaches video only over gRPC.

The messages and the servicer base are the ones the SDK's wheel ships, so this door speaks
exactly the protocol the SDK was generated from. Each request becomes the REST body that
`mapping` reads, so both xAI doors validate, price and answer alike; errors are gRPC status
codes whose details name the field at fault. The server runs on the API's event loop for as
long as the app's lifespan (`serving`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import anyio
import grpc
from xai_sdk.proto import deferred_pb2, image_pb2, usage_pb2, video_pb2, video_pb2_grpc

from openimagine.api.deps import ApiDeps
from openimagine.api.xai.mapping import (
    DOOR,
    Deferred,
    deferred,
    edit_request,
    extension_request,
    generation_request,
)
from openimagine.config import ServerSettings
from openimagine.domain.requests import VideoRequest
from openimagine.errors import ErrorKind, InvalidInput, OpenImagineError, QuotaExceeded

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

_STOP_GRACE_S = 5.0  # in-flight calls are short (a submit, a read); polls retry elsewhere
_MIB = 1 << 20
_STATUS = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.GONE: grpc.StatusCode.NOT_FOUND,
    # An input over a size limit fails the same way on every retry: the caller's to fix.
    ErrorKind.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.TOO_MANY: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# The service's names for what is no field of this API (a key, the task id).
_FIELDS: dict[str, str | None] = {"apiKey": None, "body": None, "taskUUID": "request_id"}
_DEFERRED = {
    "pending": deferred_pb2.DeferredStatus.PENDING,
    "done": deferred_pb2.DeferredStatus.DONE,
    "failed": deferred_pb2.DeferredStatus.FAILED,
    "expired": deferred_pb2.DeferredStatus.EXPIRED,
}


def _enum_names(enum: Any, prefix: str) -> dict[int, str]:
    """`VIDEO_ASPECT_RATIO_16_9` → "16:9", `VIDEO_RESOLUTION_480P` → "480p"."""
    return {
        value: name.removeprefix(prefix).replace("_", ":").lower()
        for name, value in enum.items()
        if value  # 0 is UNSPECIFIED: the field's default
    }


_ASPECTS = _enum_names(video_pb2.VideoAspectRatio, "VIDEO_ASPECT_RATIO_")
_RESOLUTIONS = _enum_names(video_pb2.VideoResolution, "VIDEO_RESOLUTION_")


def _enum(value: int, names: dict[int, str]) -> str | None:
    if not value:
        return None
    # A value newer than these messages is passed on as its number, for the mapping to
    # reject by the field's name.
    return names.get(value, str(value))


def _image(content: image_pb2.ImageUrlContent) -> dict[str, Any]:
    return {"url": content.image_url or None, "file_id": content.file_id or None}


def _video(content: video_pb2.VideoUrlContent) -> dict[str, Any]:
    return {"url": content.url or None, "file_id": content.file_id or None}


def _no_storage(request: video_pb2.GenerateVideoRequest | video_pb2.ExtendVideoRequest) -> None:
    if request.HasField("storage_options"):
        raise InvalidInput(
            "storage_options: this server keeps no xAI file storage; use the result's url.",
            code="unsupportedParameter",
            parameter="storage_options",
        )


def extend_body(request: video_pb2.ExtendVideoRequest) -> dict[str, Any]:
    """An `ExtendVideoRequest` as the REST body `mapping` reads: an unset field is None."""
    _no_storage(request)
    return {
        "prompt": request.prompt,
        "model": request.model or None,
        "duration": request.duration or None,
        "video": _video(request.video) if request.HasField("video") else None,
    }


def request_body(request: video_pb2.GenerateVideoRequest) -> dict[str, Any]:
    """A `GenerateVideoRequest` as the REST body `mapping` reads: an unset field is None."""
    _no_storage(request)
    has = request.HasField
    return {
        "prompt": request.prompt,
        "model": request.model or None,
        # compat: xAI treats a zero duration as unset (the default), as older clients send it.
        "duration": request.duration or None,
        "aspect_ratio": _enum(request.aspect_ratio, _ASPECTS),
        "resolution": _enum(request.resolution, _RESOLUTIONS),
        "image": _image(request.image) if has("image") else None,
        "video": _video(request.video) if has("video") else None,
        "reference_images": [_image(i) for i in request.reference_images],
        "generate_audio": request.generate_audio if has("generate_audio") else None,
        "last_frame": _image(request.last_frame) if has("last_frame") else None,
        "keyframes": [_image(k.image) for k in request.keyframes],
        "reference_audios": [a.voice_id for a in request.reference_audios],
    }


def deferred_response(state: Deferred) -> video_pb2.GetDeferredVideoResponse:
    """xAI's deferred result as `GetDeferredVideo` answers it."""
    fields: dict[str, Any] = {"model": state.model, "progress": state.progress}
    if state.status == "done":
        fields["video"] = video_pb2.GeneratedVideo(
            url=state.url or "",
            # The message has whole seconds only; an edit's output follows its input's length.
            duration=round(state.duration or 0),
            respect_moderation=state.respect_moderation,
        )
        fields["usage"] = usage_pb2.SamplingUsage(cost_in_usd_ticks=state.cost_in_usd_ticks or 0)
    elif state.status == "failed":
        fields["error"] = video_pb2.VideoError(
            code=state.error_code or "", message=state.error_message or ""
        )
    return video_pb2.GetDeferredVideoResponse(
        status=_DEFERRED[state.status], response=video_pb2.VideoResponse(**fields)
    )


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The key of the call's `authorization: Bearer <key>` metadata, if there is one."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _details(err: OpenImagineError) -> str:
    field = _FIELDS.get(err.parameter, err.parameter) if err.parameter else None
    if field is None or err.message.startswith(field):
        return err.message
    return f"{field}: {err.message}"


async def _answer(context: Context, call: Awaitable[T]) -> T:
    """The call's answer, or its error as a gRPC status."""
    try:
        return await call
    except Exception as err:
        await _abort(context, err)
        raise  # not reached: `_abort` ends the call


async def _abort(context: Context, err: Exception) -> NoReturn:
    """A domain error as its status, with details naming the field; anything else logged and
    answered INTERNAL, without its details."""
    if isinstance(err, OpenImagineError) and (status := _STATUS.get(err.kind)) is not None:
        trailer: tuple[tuple[str, str], ...] = ()
        if isinstance(err, QuotaExceeded):
            trailer = (("retry-after", str(err.retry_after_s)),)
        await context.abort(status, _details(err), trailer)
    log.error("gRPC call failed", exc_info=err)
    await context.abort(grpc.StatusCode.INTERNAL, "The server failed; please retry later.")


class XaiVideo(video_pb2_grpc.VideoServicer):
    """`xai_api.Video` over the API's services: the same keys, quotas, queue and files as
    every other door."""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    async def GenerateVideo(
        self, request: video_pb2.GenerateVideoRequest, context: Context
    ) -> deferred_pb2.StartDeferredResponse:
        """Text or image to video, or (with `video`) an edit; answers the request id."""
        return await _answer(context, self._generate(request, context))

    async def ExtendVideo(
        self, request: video_pb2.ExtendVideoRequest, context: Context
    ) -> deferred_pb2.StartDeferredResponse:
        """The video followed by `duration` more seconds (2-10, default 6) that continue it,
        its audio included; answers the request id."""
        return await _answer(context, self._extend(request, context))

    async def GetDeferredVideo(
        self, request: video_pb2.GetDeferredVideoRequest, context: Context
    ) -> video_pb2.GetDeferredVideoResponse:
        """The request's state; the video, its duration and its cost once done."""
        return await _answer(context, self._get(request, context))

    async def _owner(self, context: Context) -> str:
        owner = await self._deps.auth.owner(bearer(context.invocation_metadata()))
        await self._deps.quotas.count_request(owner)
        return owner

    async def _generate(
        self, request: video_pb2.GenerateVideoRequest, context: Context
    ) -> deferred_pb2.StartDeferredResponse:
        owner = await self._owner(context)
        body = request_body(request)
        build = edit_request if body["video"] is not None else generation_request
        return await self._start(owner, build(body, self._deps.card, self._deps.delivery))

    async def _extend(
        self, request: video_pb2.ExtendVideoRequest, context: Context
    ) -> deferred_pb2.StartDeferredResponse:
        owner = await self._owner(context)
        body = extend_body(request)
        return await self._start(
            owner, extension_request(body, self._deps.card, self._deps.delivery)
        )

    async def _start(
        self, owner: str, video_request: VideoRequest
    ) -> deferred_pb2.StartDeferredResponse:
        task_uuid = str(uuid.uuid4())
        await self._deps.videos.submit(owner, task_uuid, video_request, door=DOOR)
        return deferred_pb2.StartDeferredResponse(request_id=task_uuid)

    async def _get(
        self, request: video_pb2.GetDeferredVideoRequest, context: Context
    ) -> video_pb2.GetDeferredVideoResponse:
        owner = await self._owner(context)
        view = await self._deps.videos.get(owner, request.request_id.strip().lower())
        return deferred_response(deferred(view))


async def _credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    try:
        cert = await anyio.Path(settings.grpc_tls_cert).read_bytes()
        key = await anyio.Path(settings.grpc_tls_key).read_bytes()
    except OSError as err:
        raise RuntimeError(f"gRPC door: cannot read its TLS certificate or key: {err}") from err
    return grpc.ssl_server_credentials([(key, cert)])


def _options(settings: ServerSettings) -> list[tuple[str, Any]]:
    return [
        # The same bound on a parse as an HTTP body (the SDK sends up to 20 MiB).
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", 20 * _MIB),
        # gRPC binds with SO_REUSEPORT by default: a second server on a busy port would then
        # share it silently instead of failing to start.
        ("grpc.so_reuseport", 0),
        # compat: the SDK pings every 30 s, between calls too; gRPC servers by default allow
        # that only every 5 minutes and hang up on clients that ping more often.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ]


@asynccontextmanager
async def serving(deps: ApiDeps, settings: ServerSettings) -> AsyncIterator[str]:
    """The gRPC door on `settings.host:grpc_port`, listening while the block runs (on the
    running event loop); yields its address. Whether plaintext may be served on that host
    is the caller's decision (`composition.check_grpc`)."""
    server = grpc.aio.server(options=_options(settings))
    # The generated registration function has no annotations.
    video_pb2_grpc.add_VideoServicer_to_server(XaiVideo(deps), server)  # type: ignore[no-untyped-call]
    where = settings.grpc_address()
    credentials = await _credentials(settings)
    try:
        if credentials is None:
            server.add_insecure_port(where)
        else:
            server.add_secure_port(where, credentials)
    except RuntimeError as err:
        raise RuntimeError(
            f"gRPC door: cannot listen on {where}: is the port in use, or the host not one of "
            "this machine's addresses?"
        ) from err
    await server.start()
    shown = "TLS" if credentials is not None else "plaintext"
    log.info("gRPC door (xAI's Python SDK) listening on %s (%s)", where, shown)
    try:
        yield where
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(_STOP_GRACE_S)

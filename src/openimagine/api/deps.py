"""What routes take from the app: its services (`ApiDeps`), and the caller's identity.

`create_app` puts an `ApiDeps` on `app.state.deps`; `Services` hands it to a route, and
`Owner` is the one dependency that authenticates a request (raising `AuthError`, which each
router renders in its own envelope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import Headers

from openimagine.config import DeliverySettings, ServerSettings
from openimagine.delivery.blobs import BlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.models.card import ModelCard
from openimagine.runware.processor import TaskProcessor
from openimagine.service.auth import Authenticator
from openimagine.service.media import MediaService
from openimagine.service.quotas import Quotas
from openimagine.service.usage import UsageService
from openimagine.service.videos import VideoService
from openimagine.store.protocols import WorkerRegistry


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """Everything the API needs, built by `composition.build_api` (or a test)."""

    videos: VideoService
    media: MediaService
    usage: UsageService
    quotas: Quotas  #: each key's limits and request rate
    auth: Authenticator
    tasks: TaskProcessor  #: the Runware task array
    blobs: BlobStore
    signer: UrlSigner  #: verifies the local blob store's URLs
    workers: WorkerRegistry
    card: ModelCard
    weights: str
    random_weights: bool
    server: ServerSettings
    delivery: DeliverySettings
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()  #: run while serving
    close: Callable[[], Awaitable[None]] | None = field(default=None)  #: on shutdown


def bearer_token(headers: Headers) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, if there is one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def api_deps(request: Request) -> ApiDeps:
    """The app's services."""
    deps: ApiDeps = request.app.state.deps
    return deps


Services = Annotated[ApiDeps, Depends(api_deps)]


async def _owner(request: Request) -> str:
    deps = api_deps(request)
    owner = await deps.auth.owner(bearer_token(request.headers))
    await deps.quotas.count_request(owner)
    return owner


Owner = Annotated[str, Depends(_owner)]

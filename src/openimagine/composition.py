"""The one wiring module: the API, the workers and each CLI command, built from `Settings`.

Everything else names protocols (`TaskStore`, `BlobStore`, `VideoBackend`); the concrete
implementations are chosen here. Worker-side modules (torch, the content detector) are
imported only inside `run_worker_process`, which runs in spawned worker processes, so the
API process never loads them.
"""

from __future__ import annotations

import functools
import gc
import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI

from openimagine.api.app import Server, create_app
from openimagine.api.deps import ApiDeps
from openimagine.backends import fixture
from openimagine.backends.tiny import MARKER, TINY_NAME
from openimagine.config import Settings
from openimagine.delivery.blobs import BlobStore, LocalBlobStore
from openimagine.delivery.outbox import OutboxSender
from openimagine.delivery.signing import UrlSigner
from openimagine.delivery.sweeper import Sweeper
from openimagine.domain.quotas import Limits
from openimagine.domain.records import ApiKey
from openimagine.domain.usage import UsageTotals
from openimagine.media.netguard import parse_networks
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.observability import configure_logging
from openimagine.runware.processor import TaskProcessor
from openimagine.runware.webhooks import RunwarePayloads
from openimagine.service.auth import Authenticator, generate_key, hash_key, key_prefix
from openimagine.service.inputs import InputResolver
from openimagine.service.media import MediaService
from openimagine.service.quotas import Quotas
from openimagine.service.quotas import defaults as quota_defaults
from openimagine.service.usage import Period, UsageService
from openimagine.service.videos import VideoService
from openimagine.service.views import JobViews
from openimagine.store.protocols import TaskStore
from openimagine.store.sql import SqlStore
from openimagine.store.sql.revision import current_revision
from openimagine.worker.pool import WorkerPool

CARD = GROK_IMAGINE_VIDEO
_NO_LIMITS = Limits()


def weights_label(settings: Settings) -> tuple[str, bool]:
    """(weights name, random?) read from the checkpoint's marker file, without torch."""
    if settings.model.backend == fixture.NAME:
        return fixture.WEIGHTS, True
    if settings.model.checkpoint is None:
        return TINY_NAME, True
    marker = Path(settings.model.checkpoint) / MARKER
    if marker.exists():
        meta = json.loads(marker.read_text())
        return str(meta.get("name", settings.model.checkpoint)), bool(meta.get("random_weights"))
    return settings.model.checkpoint, False


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_store(settings: Settings, pool_size: int | None = None) -> TaskStore:
    """The store the settings name (connections open on first use)."""
    return SqlStore(settings.store_url(), pool_size=pool_size or settings.store.pool_size)


@asynccontextmanager
async def open_store(
    settings: Settings, *, pool_size: int | None = None, migrate: bool = True
) -> AsyncIterator[TaskStore]:
    """The store, migrated to the newest schema, closed when the block ends."""
    store = make_store(settings, pool_size)
    try:
        if migrate:
            await store.migrate()
        yield store
    finally:
        await store.close()


def make_blobs(settings: Settings, signer: UrlSigner | None) -> BlobStore:
    """The blob store: a local directory, or an S3 bucket (`s3://bucket[/prefix]`) that
    hosts share. Only the API's holds the URL signer (and so the secret)."""
    if not settings.blobs.is_s3():
        return LocalBlobStore(settings.blob_dir(), signer)
    # perf: the S3 client is loaded only by deployments that use it.
    from openimagine.delivery.s3 import S3BlobStore, parse_s3_url

    bucket, prefix = parse_s3_url(settings.blobs.url or "")
    return S3BlobStore(
        bucket,
        prefix,
        scratch_dir=settings.data_dir / "scratch",
        endpoint_url=settings.blobs.s3_endpoint_url,
        signer=signer,
        retry_s=settings.blobs.s3_retry_s,
    )


# -- the API ---------------------------------------------------------------------------------


def build_api(settings: Settings) -> FastAPI:
    """The API app with a fresh store (connections open lazily in the serving loop)."""
    store = make_store(settings)
    signer = UrlSigner(settings.signing_secret(), settings.public_url())
    blobs = make_blobs(settings, signer)
    allowed = parse_networks(settings.allowed_networks)
    media = MediaService(
        store.media,
        store.jobs,
        blobs,
        settings.inputs,
        allowed,
        max_stored_bytes=settings.quotas.max_stored_bytes_per_key,
    )
    views = JobViews(store.jobs, blobs)
    quotas = Quotas(store.keys, settings.quotas, usage=store.usage)
    videos = VideoService(
        store.jobs,
        InputResolver(media, CARD),
        views,
        blobs,
        CARD,
        max_attempts=settings.workers.max_attempts,
        quotas=quotas,
    )
    sender = OutboxSender(
        store.outbox,
        RunwarePayloads(views),
        blobs,
        settings.delivery,
        secret=settings.webhook_secret(),
        allowed_networks=allowed,
    )
    sweeper = Sweeper(store.sweep, blobs, interval_s=settings.delivery.sweep_interval_s)
    weights, random_weights = weights_label(settings)
    deps = ApiDeps(
        videos=videos,
        media=media,
        usage=UsageService(store.usage),
        quotas=quotas,
        auth=Authenticator(store.keys),
        tasks=TaskProcessor(videos, media, CARD, settings.delivery, settings.server.max_body_bytes),
        blobs=blobs,
        signer=signer,
        workers=store.workers,
        card=CARD,
        weights=weights,
        random_weights=random_weights,
        server=settings.server,
        delivery=settings.delivery,
        background=(sender.run, sweeper.run),
        close=store.close,
    )
    return create_app(deps, servers=grpc_servers(settings, deps))


def check_grpc(settings: Settings) -> None:
    """`ValueError` when the gRPC door would serve plaintext beyond this machine (API keys
    cross the network in its metadata, in the clear)."""
    server = settings.server
    if server.grpc_port and not server.grpc_tls() and not is_loopback(server.host):
        raise ValueError(
            f"Refusing to serve gRPC in plaintext on {server.host}: set "
            "OPENIMAGINE_SERVER__GRPC_TLS_CERT and OPENIMAGINE_SERVER__GRPC_TLS_KEY, or bind "
            "a loopback host."
        )


def grpc_servers(settings: Settings, deps: ApiDeps) -> list[Server]:
    """xAI's gRPC door for the app's lifespan, when `server.grpc_port` is set."""
    if not settings.server.grpc_port:
        return []
    check_grpc(settings)
    # perf: grpc and xAI's SDK (about half a second of imports) load only when it is on.
    from openimagine.api.xai.grpc import serving

    return [functools.partial(serving, deps, settings.server)]


def tune_gc() -> None:
    """Garbage collection for a long-running API process.

    perf: every request allocates many short-lived objects, so the default threshold (700)
    runs a collection every few requests, and each older-generation one walks everything
    built at startup (the app, its routes, SQLAlchemy's metadata). Measured on the submit
    benchmark: about 10 % more requests a second. The startup objects are frozen out of
    collections and young collections run a hundred times less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(70_000, 20, 10)


# -- workers ---------------------------------------------------------------------------------


def start_workers(settings: Settings, count: int) -> WorkerPool:
    """`count` spawned worker processes (restarted when they die); stop with `.stop()`."""
    pool = WorkerPool(settings, count, run_worker_process)
    pool.start()
    return pool


def run_worker_process(settings: Settings, index: int = 0, parent_pid: int | None = None) -> None:
    """A worker process's main: its backend (from the `openimagine.backends` entry points),
    the store's queue, the blob store without the signing secret, and the content checks."""
    from openimagine.backends.registry import make_backend
    from openimagine.worker.main import Worker, WorkerParts, quiet_libraries
    from openimagine.worker.safety import make_safety

    configure_logging()
    quiet_libraries(settings)

    async def main() -> None:
        async with open_store(settings, pool_size=2) as store:
            parts = WorkerParts(
                queue=store.queue,
                registry=store.workers,
                backend=make_backend(settings),
                blobs=make_blobs(settings, signer=None),
                safety=make_safety(settings.safety),
            )
            worker = Worker(settings, parts, index, parent_pid)
            worker.install_signals()
            await worker.run()

    anyio.run(main)


# -- CLI commands on the store ---------------------------------------------------------------


async def migrate(settings: Settings) -> tuple[str | None, str | None]:
    """Create or upgrade the schema; its revision before (None: no schema) and after."""
    url = settings.store_url()
    before = await anyio.to_thread.run_sync(current_revision, url)
    async with open_store(settings, pool_size=1):
        pass
    return before, await anyio.to_thread.run_sync(current_revision, url)


async def prepare_store(settings: Settings, *, create_key: bool) -> str | None:
    """Migrate, store the configured keys (hashed), and create a first key if none exists.

    Returns the newly created key (to print once), or None.
    """
    async with open_store(settings, pool_size=1) as store:
        await store.keys.configure({hash_key(key): key_prefix(key) for key in settings.api_keys})
        if any(k.revoked_at is None for k in await store.keys.all()) or not create_key:
            return None
        key = generate_key()
        await store.keys.add(hash_key(key), "created on first start", key_prefix(key))
        return key


async def has_active_key(settings: Settings) -> bool:
    """Whether the store holds an active key."""
    async with open_store(settings, pool_size=1) as store:
        return any(k.revoked_at is None for k in await store.keys.all())


async def add_key(settings: Settings, key: str, label: str, limits: Limits = _NO_LIMITS) -> None:
    """Store a key (hashed), with its overrides of the quota settings."""
    async with open_store(settings, pool_size=1) as store:
        key_id = await store.keys.add(hash_key(key), label, key_prefix(key))
        if limits != _NO_LIMITS:
            await store.keys.set_limits(key_id, limits)


async def key_limits(
    settings: Settings, key_id_or_prefix: str, changes: Limits
) -> tuple[ApiKey, Limits] | None:
    """Change a key's overrides (those `changes` sets); the key and its effective limits,
    or None when no active key matches."""
    async with open_store(settings, pool_size=1) as store:
        if changes != _NO_LIMITS and not await store.keys.set_limits(key_id_or_prefix, changes):
            return None
        for key in await store.keys.all():
            if key.revoked_at is None and key_id_or_prefix in (key.id, key.prefix):
                return key, key.limits.over(quota_defaults(settings.quotas))
        return None


async def list_keys(settings: Settings) -> list[ApiKey]:
    """Every key, newest first."""
    async with open_store(settings, pool_size=1) as store:
        return await store.keys.all()


async def usage_by_key(
    settings: Settings, period: Period
) -> tuple[dict[str, ApiKey], list[UsageTotals]]:
    """Every key by id, and each key's usage over `period`."""
    async with open_store(settings, pool_size=1) as store:
        keys = {k.id: k for k in await store.keys.all()}
        return keys, await UsageService(store.usage).every_key(period)


async def revoke_key(settings: Settings, key_id_or_prefix: str) -> bool:
    """Revoke a key by id or prefix; False when none matched."""
    async with open_store(settings, pool_size=1, migrate=False) as store:
        return await store.keys.revoke(key_id_or_prefix)

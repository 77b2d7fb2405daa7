"""Building the pieces from `Settings`: shared by the CLI and the end-to-end tests."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from fastapi import FastAPI

from openimagine.api.app import AppDeps, create_app
from openimagine.config import Settings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.netguard import parse_networks
from openimagine.delivery.signing import UrlSigner
from openimagine.delivery.webhooks import RetryPolicy
from openimagine.inputs import InputConfig, InputResolver
from openimagine.keys import generate_key, hash_key, key_prefix
from openimagine.media.videos import VideoLimits
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.models.validation import Limits
from openimagine.outbox import OutboxSender
from openimagine.service import ServiceConfig, VideoService
from openimagine.store.sql import SqlStore
from openimagine.sweeper import Sweeper

MARKER = "openimagine-model.json"


def weights_label(settings: Settings) -> tuple[str, bool]:
    """(weights name, random?) read from the checkpoint's marker file, without torch."""
    if settings.model.checkpoint is None:
        return "tiny-ltx2-v1", True
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


def build_app(settings: Settings) -> FastAPI:
    """The API app with a fresh store (connections open lazily in the serving loop)."""
    store = SqlStore(settings.store_url(), pool_size=settings.store.pool_size)
    blobs = LocalBlobStore(settings.blob_dir())
    signer = UrlSigner(settings.signing_secret(), settings.public_url())
    allowed = parse_networks(settings.allowed_networks)
    limits = settings.inputs
    inputs = InputResolver(
        store,
        blobs,
        GROK_IMAGINE_VIDEO,
        InputConfig(
            max_image_bytes=limits.max_image_bytes,
            max_image_pixels=limits.max_image_pixels,
            max_video_bytes=limits.max_video_bytes,
            video=VideoLimits(
                max_pixels=limits.max_video_pixels,
                max_seconds=limits.max_video_seconds,
                max_frames=limits.max_video_frames,
            ),
            fetch_timeout_s=limits.fetch_timeout_s,
            max_redirects=limits.max_redirects,
            media_ttl_s=limits.media_ttl_s,
            allowed_networks=allowed,
        ),
    )
    service = VideoService(
        store=store,
        card=GROK_IMAGINE_VIDEO,
        blobs=blobs,
        signer=signer,
        inputs=inputs,
        config=ServiceConfig(
            limits=Limits(
                default_ttl_s=settings.delivery.default_ttl_s, max_ttl_s=settings.delivery.max_ttl_s
            ),
            max_attempts=settings.workers.max_attempts,
            max_upload_bytes=settings.server.max_body_bytes,
        ),
    )
    weights, random_weights = weights_label(settings)
    return create_app(
        AppDeps(
            store=store,
            service=service,
            blobs=blobs,
            signer=signer,
            card=GROK_IMAGINE_VIDEO,
            weights=weights,
            random_weights=random_weights,
            max_body_bytes=settings.server.max_body_bytes,
            ws_idle_timeout_s=settings.server.ws_idle_timeout_s,
            sender=OutboxSender(
                store,
                secret=settings.webhook_secret(),
                allowed_networks=allowed,
                policy=RetryPolicy(
                    max_attempts=settings.delivery.webhook_max_attempts,
                    backoff_s=settings.delivery.webhook_backoff_s,
                    backoff_max_s=settings.delivery.webhook_backoff_max_s,
                ),
                timeout_s=settings.delivery.webhook_timeout_s,
                blobs=blobs,
            ),
            sweeper=Sweeper(store, blobs, interval_s=settings.delivery.sweep_interval_s),
        )
    )


async def prepare_store(settings: Settings, *, create_key: bool) -> str | None:
    """Migrate, store the configured keys (hashed), and create a first key if none exists.

    Returns the newly created key (to print once), or None.
    """
    store = SqlStore(settings.store_url(), pool_size=1)
    try:
        await store.migrate()
        for key in settings.api_keys:
            await store.add_api_key(hash_key(key), "configured", key_prefix(key))
        if any(k.revoked_at is None for k in await store.list_api_keys()):
            return None
        if not create_key:
            return None
        key = generate_key()
        await store.add_api_key(hash_key(key), "created on first start", key_prefix(key))
        return key
    finally:
        await store.close()


async def has_active_key(settings: Settings) -> bool:
    """Whether the store holds an active key."""
    store = SqlStore(settings.store_url(), pool_size=1)
    try:
        await store.migrate()
        return any(k.revoked_at is None for k in await store.list_api_keys())
    finally:
        await store.close()

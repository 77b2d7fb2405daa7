"""Prices and sizes that depend on input media, resolved the way a submit resolves them
(real store, real files, real probes), without generating anything."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media_factory import data_uri, image_bytes, write_video

from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.inputs import InputConfig, InputResolver
from openimagine.media.videos import VideoLimits
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.models.validation import Limits, validate_video_task
from openimagine.service import ServiceConfig, VideoService
from openimagine.store.sql import SqlStore


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[VideoService]:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    blobs = LocalBlobStore(tmp_path / "blobs")
    inputs = InputResolver(
        store,
        blobs,
        GROK_IMAGINE_VIDEO,
        InputConfig(
            max_image_bytes=10_000_000,
            max_image_pixels=40_000_000,
            max_video_bytes=50_000_000,
            video=VideoLimits(max_pixels=4_000_000, max_seconds=30, max_frames=1800),
            fetch_timeout_s=2,
            max_redirects=0,
            media_ttl_s=3600,
        ),
    )
    yield VideoService(
        store=store,
        card=GROK_IMAGINE_VIDEO,
        blobs=blobs,
        signer=UrlSigner(b"k", "http://127.0.0.1"),
        config=ServiceConfig(
            limits=Limits(default_ttl_s=3600, max_ttl_s=86400),
            max_attempts=3,
            max_upload_bytes=50_000_000,
        ),
        inputs=inputs,
    )
    await store.close()


def _task(**fields: object) -> dict[str, object]:
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": GROK_IMAGINE_VIDEO.id,
        "positivePrompt": "x",
        **fields,
    }


async def _resolve(service: VideoService, task: dict[str, object]):
    request = validate_video_task(task, GROK_IMAGINE_VIDEO, service.config.limits)
    return await service.inputs.resolve("owner", request)


async def test_the_page_v2v_example_costs_0_404(service: VideoService, tmp_path: Path):
    # 202 frames at 30 fps (101/15 s) of 480p video, no duration: the output is as long.
    src = write_video(tmp_path / "s.mp4", frames=202, fps=30, width=848, height=480)
    resolved = await _resolve(
        service, _task(inputs={"video": data_uri(src.read_bytes(), "video/mp4")})
    )
    assert (resolved.width, resolved.height) == (848, 480)
    assert resolved.num_frames == 162  # 6.73 s at 24 fps
    assert service.price(resolved) == 0.404


@pytest.mark.parametrize(
    ("stored", "resolution", "expected"),
    [
        ((640, 480), "720p", (960, 720)),  # a 4:3 photo at 720p
        ((480, 848), "480p", (480, 848)),  # a portrait phone shot at 480p
        ((1000, 1000), "480p", (480, 480)),
        ((1920, 1080), None, (848, 480)),  # the default preset is 480p
    ],
)
async def test_i2v_size_is_the_nearest_aspect_at_the_preset(
    service: VideoService,
    stored: tuple[int, int],
    resolution: str | None,
    expected: tuple[int, int],
):
    image = data_uri(image_bytes(*stored), "image/png")
    fields: dict[str, object] = {"duration": 6, "inputs": {"frameImages": [image]}}
    if resolution:
        fields["resolution"] = resolution
    resolved = await _resolve(service, _task(**fields))
    assert (resolved.width, resolved.height) == expected
    assert service.price(resolved) == (0.422 if resolution == "720p" else 0.302)

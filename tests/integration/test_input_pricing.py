"""Prices and sizes that depend on input media, resolved the way a submit resolves them
(real store, real files, real probes), without generating anything."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media_factory import data_uri, image_bytes, write_video

from openimagine.config import DeliverySettings, InputSettings
from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.signing import UrlSigner
from openimagine.domain.generation import GenerationJob
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.models.pricing import as_float, price
from openimagine.runware.validation import validate_video_task
from openimagine.service.inputs import InputResolver
from openimagine.service.media import MediaService
from openimagine.store.sql import SqlStore

LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=86400)


@pytest.fixture
async def resolver(tmp_path: Path) -> AsyncIterator[InputResolver]:
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    blobs = LocalBlobStore(tmp_path / "blobs", UrlSigner(b"k", "http://127.0.0.1"))
    limits = InputSettings(
        max_image_bytes=10_000_000,
        max_video_bytes=50_000_000,
        max_video_pixels=4_000_000,
        fetch_timeout_s=2,
        max_redirects=0,
        media_ttl_s=3600,
    )
    yield InputResolver(MediaService(store.media, store.jobs, blobs, limits), GROK_IMAGINE_VIDEO)
    await store.close()


def _task(**fields: object) -> dict[str, object]:
    return {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": GROK_IMAGINE_VIDEO.id,
        "positivePrompt": "x",
        **fields,
    }


async def _resolve(resolver: InputResolver, task: dict[str, object]) -> GenerationJob:
    request = validate_video_task(task, GROK_IMAGINE_VIDEO, LIMITS)
    return await resolver.resolve("owner", request)


def _price(spec: GenerationJob) -> float:
    return as_float(price(GROK_IMAGINE_VIDEO, spec))


async def test_the_page_v2v_example_costs_0_404(resolver: InputResolver, tmp_path: Path):
    # 202 frames at 30 fps (101/15 s) of 480p video, no duration: the output is as long.
    src = write_video(tmp_path / "s.mp4", frames=202, fps=30, width=848, height=480)
    resolved = await _resolve(
        resolver, _task(inputs={"video": data_uri(src.read_bytes(), "video/mp4")})
    )
    assert (resolved.width, resolved.height) == (848, 480)
    assert resolved.num_frames == 162  # 6.73 s at 24 fps
    assert _price(resolved) == 0.404


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
    resolver: InputResolver,
    stored: tuple[int, int],
    resolution: str | None,
    expected: tuple[int, int],
):
    image = data_uri(image_bytes(*stored), "image/png")
    fields: dict[str, object] = {"duration": 6, "inputs": {"frameImages": [image]}}
    if resolution:
        fields["resolution"] = resolution
    resolved = await _resolve(resolver, _task(**fields))
    assert (resolved.width, resolved.height) == expected
    assert _price(resolved) == (0.422 if resolution == "720p" else 0.302)

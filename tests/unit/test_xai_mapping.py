"""xAI's request fields mapped to the model card: the seven aspect ratios at two resolutions
are exactly the card's 14 sizes, defaults are xAI's, every error names the xAI field, and a
price in xAI's ticks is the card's price exactly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from openimagine.api.xai.mapping import edit_request, extension_request, generation_request, ticks
from openimagine.config import DeliverySettings
from openimagine.domain.requests import Mode
from openimagine.errors import InvalidInput
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO

CARD = GROK_IMAGINE_VIDEO
LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=7 * 24 * 3600)
IMAGE = {"url": "https://example.com/cat.png"}
FILE = "aac49721-1964-481a-ae78-8a4e29b91402"


def generate(**fields: Any) -> Any:
    return generation_request({"prompt": "a lighthouse", **fields}, CARD, LIMITS)


@pytest.mark.parametrize("size", CARD.sizes, ids=lambda s: f"{s.aspect}@{s.tier}")
def test_aspect_ratio_and_resolution_name_each_of_the_cards_sizes(size: Any) -> None:
    request = generate(aspect_ratio=size.aspect, resolution=size.tier)
    assert (request.width, request.height) == (size.width, size.height)


def test_defaults_are_xais_16_9_eight_seconds_one_mp4_with_its_cost() -> None:
    request = generate()
    default = next(
        s for s in CARD.sizes if s.aspect == "16:9" and s.tier == CARD.default_resolution
    )
    assert (request.width, request.height) == (default.width, default.height)
    assert request.duration_s == 8
    assert (request.number_results, request.output_format, request.include_cost) == (1, "MP4", True)
    assert request.model == CARD.id
    assert generate(model="grok-imagine-video").model == CARD.id


def test_an_image_makes_image_to_video_at_the_asked_tier_whatever_the_aspect_ratio() -> None:
    request = generate(image=IMAGE, resolution="720p", aspect_ratio="9:16", duration=5)
    assert request.mode is Mode.I2V
    assert (request.width, request.height, request.resolution) == (None, None, "720p")
    assert request.frame_image is not None and request.frame_image.source == IMAGE["url"]
    by_id = generate(image={"file_id": FILE.upper()})
    assert by_id.frame_image is not None and by_id.frame_image.source == FILE


def test_an_edit_keeps_the_videos_size_and_length() -> None:
    request = edit_request({"prompt": "as a watercolor", "video": {"file_id": FILE}}, CARD, LIMITS)
    assert request.mode is Mode.V2V
    assert (request.width, request.height, request.duration_s) == (None, None, None)


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"aspect_ratio": "21:9"}, "aspect_ratio"),
        ({"resolution": "1080p"}, "resolution"),
        ({"duration": 0}, "duration"),
        ({"duration": 16}, "duration"),
        ({"duration": "8"}, "duration"),
        ({"image": "https://example.com/cat.png"}, "image"),
        ({"image": {"url": "ftp://example.com/cat.png"}}, "image"),
        ({"image": {"url": IMAGE["url"], "file_id": FILE}}, "image"),
        ({"image": {"file_id": "not-a-uuid"}}, "image"),
        ({"reference_images": {"url": IMAGE["url"]}}, "reference_images"),
        ({"model": "grok-2-image"}, "model"),
        ({"prompt": None}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"generate_audio": False}, "generate_audio"),
        ({"keyframes": [IMAGE]}, "keyframes"),
    ],
)
def test_a_bad_field_is_refused_under_its_xai_name(fields: dict[str, Any], parameter: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        generate(**fields)
    assert caught.value.parameter == parameter


@pytest.mark.parametrize("field", ["duration", "aspect_ratio", "resolution", "image"])
def test_an_edit_refuses_what_would_change_the_videos_shape(field: str) -> None:
    body = {"prompt": "p", "video": {"file_id": FILE}, field: IMAGE if field == "image" else 5}
    with pytest.raises(InvalidInput) as caught:
        edit_request(body, CARD, LIMITS)
    assert caught.value.parameter == field
    with pytest.raises(InvalidInput) as missing:
        edit_request({"prompt": "p"}, CARD, LIMITS)
    assert missing.value.parameter == "video"


@pytest.mark.parametrize("usd", ["0.05", "0.3", "0.56", "0.404", "1.302"])
def test_ticks_are_the_price_exactly(usd: str) -> None:
    assert ticks(float(usd)) == Decimal(usd) * 10**10


def test_an_extension_adds_six_seconds_unless_told_and_refuses_other_lengths() -> None:
    video = {"video": {"url": "https://example.com/clip.mp4"}}
    request = extension_request({"prompt": "then", **video}, CARD, LIMITS)
    assert request.mode is Mode.EXTEND and request.duration_s == 6
    assert (
        extension_request({"prompt": "p", **video, "duration": 10}, CARD, LIMITS).duration_s == 10
    )
    for bad in (1, 11, 2.5, True):
        with pytest.raises(InvalidInput) as caught:
            extension_request({"prompt": "p", **video, "duration": bad}, CARD, LIMITS)
        assert caught.value.parameter == "duration"

"""Extension as a Runware field, `inputs.extendVideo`: the video continued by `duration`
seconds (2-10, default 6) at its size; errors name the field that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from openimagine.config import DeliverySettings
from openimagine.domain.requests import Mode
from openimagine.errors import InvalidInput
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.runware.validation import validate_video_task

CARD = GROK_IMAGINE_VIDEO
LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=7 * 24 * 3600)
VIDEO = "aac49721-1964-481a-ae78-8a4e29b91402"


def task(**fields: Any) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": "1b4a4b1e-3e55-4b0b-9a1c-2b1e0c7f5a11",
        "model": CARD.id,
        "positivePrompt": "and then",
        "inputs": {"extendVideo": VIDEO},
        **fields,
    }


def test_extend_video_continues_the_video_by_six_seconds_unless_told() -> None:
    request = validate_video_task(task(), CARD, LIMITS)
    assert request.mode is Mode.EXTEND and request.extend
    assert request.video is not None and request.video.parameter == "inputs.extendVideo"
    assert (request.width, request.height, request.duration_s) == (None, None, 6)
    assert validate_video_task(task(duration=10), CARD, LIMITS).duration_s == 10


def test_an_extension_and_a_transform_of_the_same_video_are_different_requests() -> None:
    extend = validate_video_task(task(duration=4), CARD, LIMITS)
    transform = validate_video_task(task(duration=4, inputs={"video": VIDEO}), CARD, LIMITS)
    assert transform.mode is Mode.V2V
    assert extend.fingerprint() != transform.fingerprint()


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"duration": 1}, "duration"),
        ({"duration": 11}, "duration"),
        ({"duration": 2.5}, "duration"),
        ({"width": 848, "height": 480}, "width"),
        ({"resolution": "720p"}, "resolution"),
        ({"inputs": {"extendVideo": VIDEO, "video": VIDEO}}, "inputs.extendVideo"),
        ({"inputs": {"extendVideo": VIDEO, "frameImages": [VIDEO]}}, "inputs.extendVideo"),
        ({"inputs": {"extendVideo": ""}}, "inputs.extendVideo"),
    ],
)
def test_a_bad_extension_is_refused_naming_the_field(fields: dict[str, Any], parameter: str):
    with pytest.raises(InvalidInput) as caught:
        validate_video_task(task(**fields), CARD, LIMITS)
    assert caught.value.parameter == parameter

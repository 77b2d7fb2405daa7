"""Prices from the model page (shared/spec/grok-imagine-video.md), to the exact cent fraction.

The page: "A 6-second T2V video starts at $0.30; each extra second is $0.05 (+$0.002 if using an
image input or +$0.01/s of video input)", a six-row price list, and example responses with
`cost` 0.56 (720p T2V, 8 s) and 0.404 (V2V). Every expected value is written as the page writes
it, and compared both as an exact Decimal and as the float that goes on the wire.
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from openimagine.config import DeliverySettings
from openimagine.domain.generation import GenerationJob
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.media.fit import frames_needed
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.models.pricing import as_float, price, quote
from openimagine.runware.validation import validate_video_task

CARD = GROK_IMAGINE_VIDEO
LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=7 * 24 * 3600)
IMAGE = "aac49721-1964-481a-ae78-8a4e29b91402"


def quote_mode(tier: str, mode: str, seconds: Fraction) -> Decimal:
    """The price of one clip of `seconds` in `mode`, with a source video as long as the output
    for V2V (the page's V2V rows are 6 s in, 6 s out)."""
    return quote(
        CARD,
        tier=tier,
        output_seconds=seconds,
        image_input=mode == "i2v",
        input_video_seconds=seconds if mode == "v2v" else None,
    )


def spec(
    mode: Mode,
    width: int,
    height: int,
    num_frames: int,
    duration_s: int | None,
    source_seconds: Fraction | None = None,
) -> GenerationJob:
    """A resolved job of this shape (the fields pricing does not read are fixed)."""
    return GenerationJob(
        model=CARD.id,
        prompt="p",
        mode=mode,
        width=width,
        height=height,
        num_frames=num_frames,
        fps=CARD.fps,
        duration_s=duration_s,
        source_seconds=source_seconds,
        output_format="MP4",
        output_quality=95,
        ttl_s=3600,
        number_results=1,
        include_cost=True,
        safety_mode=SafetyMode.NONE,
    )


def submit_price(task: dict[str, Any]) -> float:
    """The per-result cost the service stores at submit for a task."""
    request = validate_video_task(task, CARD, LIMITS)
    width, height = request.width, request.height
    if width is None or height is None:
        # Image-to-video takes its size from the image at submit: a 16:9 one here.
        size = CARD.nearest_size(request.resolution or CARD.default_resolution, 16, 9)
        width, height = size.width, size.height
    assert request.duration_s is not None
    frames = frames_needed(Fraction(request.duration_s), CARD.fps)
    return as_float(price(CARD, spec(request.mode, width, height, frames, request.duration_s)))


def task(**fields: Any) -> dict[str, Any]:
    return {
        "taskType": "videoInference",
        "taskUUID": "ba22dba3-0b1d-44e1-ad81-b3eb720d91fe",
        "model": "xai:grok-imagine@video",
        "positivePrompt": "a lighthouse in a storm",
        **fields,
    }


# The page's price list, row by row.
PRICE_LIST = [
    ("480p", "t2v", "0.30"),
    ("720p", "t2v", "0.42"),
    ("480p", "i2v", "0.302"),
    ("720p", "i2v", "0.422"),
    ("480p", "v2v", "0.36"),
    ("720p", "v2v", "0.48"),
]


@pytest.mark.parametrize(("tier", "mode", "price"), PRICE_LIST)
def test_each_row_of_the_price_list(tier: str, mode: str, price: str):
    cost = quote_mode(tier, mode, Fraction(6))
    assert cost == Decimal(price)
    assert as_float(cost) == float(price)


@pytest.mark.parametrize(
    ("fields", "price"),
    [
        ({"width": 848, "height": 480, "duration": 6}, 0.3),
        ({"width": 1280, "height": 720, "duration": 6}, 0.42),
        ({"inputs": {"frameImages": [IMAGE]}, "duration": 6}, 0.302),  # resolution defaults 480p
        ({"inputs": {"frameImages": [IMAGE]}, "resolution": "720p", "duration": 6}, 0.422),
    ],
    ids=["480p-t2v", "720p-t2v", "480p-i2v", "720p-i2v"],
)
def test_a_submitted_task_is_priced_as_the_list_says(fields: dict[str, Any], price: float):
    assert submit_price(task(**fields)) == price


# Every size of the page's dimension table with its tier's price for one second.
SIZE_PRICES = [
    *[
        (w, h, 0.05)
        for w, h in [
            (480, 480),
            (848, 480),
            (480, 848),
            (640, 480),
            (480, 640),
            (720, 480),
            (480, 720),
        ]
    ],
    *[
        (w, h, 0.07)
        for w, h in [
            (720, 720),
            (1280, 720),
            (720, 1280),
            (960, 720),
            (720, 960),
            (1088, 720),
            (720, 1088),
        ]
    ],
]


@pytest.mark.parametrize(("width", "height", "price"), SIZE_PRICES)
def test_the_tier_of_each_size_sets_its_price(width: int, height: int, price: float):
    assert submit_price(task(width=width, height=height, duration=1)) == price


def test_the_page_text_to_video_examples_cost_0_56():
    # "Moonlit Clockwork Carnival Alley" and "Stormy Lighthouse Rescue": 1280x720, 8 s.
    cost = submit_price(task(width=1280, height=720, duration=8))
    assert cost == 0.56
    assert json.dumps({"cost": cost}) == '{"cost": 0.56}'


def test_the_page_video_to_video_example_costs_0_404():
    # "Bioluminescent Reef Dreamscape" sends no duration, so the output is as long as the
    # source. The page does not give the source length; 0.404 is exactly a 480p output of a
    # 202-frame, 30 fps source (101/15 s): (0.05 + 0.01) x 101/15.
    seconds = Fraction(202, 30)
    cost = quote(CARD, tier="480p", output_seconds=seconds, input_video_seconds=seconds)
    assert cost == Decimal("0.404")
    assert as_float(cost) == 0.404
    # The resolved job: 162 frames at 24 fps (6.75 s) in the file, billed as the source's 6.73.
    v2v = spec(Mode.V2V, 848, 480, 162, None, source_seconds=seconds)
    assert price(CARD, v2v) == Decimal("0.404")
    # With a duration, the output seconds are the duration's; the source still bills.
    assert price(CARD, spec(Mode.V2V, 848, 480, 48, 2, source_seconds=seconds)) == Decimal(
        "0.167333"
    )


@pytest.mark.parametrize("duration", range(1, 16))
@pytest.mark.parametrize(("tier", "per_second"), [("480p", "0.05"), ("720p", "0.07")])
def test_each_second_costs_the_tier_rate(duration: int, tier: str, per_second: str):
    expected = Decimal(per_second) * duration
    assert quote_mode(tier, "t2v", Fraction(duration)) == expected
    # The wire value is the shortest float of the exact price, not a float product
    # (0.05 * 7 == 0.35000000000000003, 0.07 * 3 == 0.21000000000000002).
    assert repr(as_float(quote_mode(tier, "t2v", Fraction(duration)))) == str(expected.normalize())


@pytest.mark.parametrize("duration", [1, 6, 15])
@pytest.mark.parametrize(("tier", "per_second"), [("480p", "0.05"), ("720p", "0.07")])
def test_an_image_input_adds_a_flat_0_002(duration: int, tier: str, per_second: str):
    expected = Decimal(per_second) * duration + Decimal("0.002")
    assert quote_mode(tier, "i2v", Fraction(duration)) == expected


@pytest.mark.parametrize(
    ("output_s", "input_s", "expected"),
    [
        (6, 6, "0.36"),
        (2, 10, "0.2"),  # a 2 s output from a 10 s source: 0.10 + 0.10
        (10, 2, "0.52"),
    ],
)
def test_a_video_input_adds_0_01_per_input_second(output_s: int, input_s: int, expected: str):
    cost = quote(
        CARD,
        tier="480p",
        output_seconds=Fraction(output_s),
        input_video_seconds=Fraction(input_s),
    )
    assert cost == Decimal(expected)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (Fraction(1, 3), "0.016667"),  # 0.0166666... rounds to a millionth
        (Fraction(2, 3), "0.033333"),
        (Fraction(1, 100000), "0.000001"),  # exactly 0.0000005: a half rounds up
        (Fraction(3, 1000000), "0"),  # 0.00000015 rounds down to nothing
    ],
)
def test_fractional_seconds_are_exact_until_one_final_rounding(seconds: Fraction, expected: str):
    assert quote(CARD, tier="480p", output_seconds=seconds) == Decimal(expected)


def test_a_fractional_source_is_charged_for_its_exact_length():
    # 121 frames at 24 fps (5.041666... s) of input: rounding happens once, on the total.
    cost = quote(
        CARD, tier="720p", output_seconds=Fraction(5), input_video_seconds=Fraction(121, 24)
    )
    assert cost == Decimal("0.400417")  # 0.35 + 0.0504166...


@pytest.mark.parametrize("number", [1, 2, 4])
def test_the_cost_on_each_result_does_not_depend_on_number_results(number: int):
    # `cost` is reported on every result item; each result is one clip at the list price.
    fields = {"inputs": {"frameImages": [IMAGE]}, "resolution": "720p", "numberResults": number}
    assert submit_price(task(**fields)) == 0.422


def test_an_extension_costs_its_whole_output_plus_its_input():
    # Not on the page (README, "Extension"): 6 s at 480p extended by 4 s is 10 s of output at
    # $0.05 and 6 s of input video at $0.01; at 720p, $0.07 a second of output.
    six = Fraction(6)
    assert price(CARD, spec(Mode.EXTEND, 848, 480, 240, 4, six)) == Decimal("0.56")
    assert price(CARD, spec(Mode.EXTEND, 1280, 720, 240, 4, six)) == Decimal("0.76")
    # An input of 101/15 s (202 frames at 30 fps) is billed exactly, as video-to-video is.
    odd = Fraction(101, 15)
    assert price(CARD, spec(Mode.EXTEND, 480, 480, 210, 2, odd)) == Decimal("0.504")

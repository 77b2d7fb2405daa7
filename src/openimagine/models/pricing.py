"""Pure pricing from a model card's price list; exact decimal arithmetic, per result."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from openimagine.domain.generation import GenerationJob
from openimagine.domain.requests import Mode
from openimagine.models.card import ModelCard

_QUANTUM = Decimal("0.000001")


def quote(
    card: ModelCard,
    *,
    tier: str,
    output_seconds: Fraction,
    image_input: bool = False,
    input_video_seconds: Fraction | None = None,
) -> Decimal:
    """Cost in USD of one result.

    Output seconds at the tier's rate, plus the flat image-input charge, plus the per-second
    charge for input video. Seconds are exact fractions (a 202-frame 30 fps source is 101/15 s),
    so the only rounding is the final one to a millionth of a dollar.
    """
    prices = card.prices
    total = Fraction(prices.per_second[tier]) * output_seconds
    if image_input:
        total += Fraction(prices.image_input)
    if input_video_seconds is not None:
        total += Fraction(prices.video_input_per_second) * input_video_seconds
    exact = Decimal(total.numerator) / Decimal(total.denominator)
    return exact.quantize(_QUANTUM, rounding=ROUND_HALF_UP).normalize()


def price(card: ModelCard, spec: GenerationJob) -> Decimal:
    """The cost of one result of a resolved job (see `_price`; perf: the same few shapes
    recur, so prices are remembered per shape)."""
    key = (card.id, spec.mode, spec.width, spec.height, spec.duration_s, spec.source_seconds)
    found = _PRICES.get(key)
    if found is None:
        if len(_PRICES) >= _PRICES_KEPT:
            _PRICES.clear()
        found = _PRICES[key] = _price(
            card, spec.mode, spec.width, spec.height, spec.duration_s, spec.source_seconds
        )
    return found


_PRICES: dict[tuple[object, ...], Decimal] = {}
_PRICES_KEPT = 4096


def _price(
    card: ModelCard,
    mode: Mode,
    width: int,
    height: int,
    duration_s: int | None,
    source_seconds: Fraction | None,
) -> Decimal:
    """Video-to-video without `duration` bills the source's exact length (the page's
    202-frame 30 fps example costs $0.404), though the file, at 24 fps, rounds it to whole
    frames. An extension bills its whole output (the input and what is added) at the tier's
    rate, plus the input at the video-input rate: 6 s at 480p extended by 4 s is
    10 × $0.05 + 6 × $0.01 = $0.56."""
    if mode is Mode.EXTEND:  # the whole output (input and continuation), plus the input
        seconds = (source_seconds or Fraction(0)) + (duration_s or 0)
    elif duration_s is not None:
        seconds = Fraction(duration_s)
    else:
        seconds = source_seconds if source_seconds is not None else Fraction(0)
    return quote(
        card,
        tier=card.tier(width, height),
        output_seconds=seconds,
        image_input=mode is Mode.I2V,
        input_video_seconds=source_seconds,
    )


def as_float(cost: Decimal) -> float:
    """The JSON form Runware uses for `cost`."""
    return float(cost)

"""The request of a door whose clients ask for one video with less than Runware's fields
(OpenAI's, xAI's): the card's default format and quality, the default lifetime, one result,
its cost kept (so getResponse on the same task shows its price), no content check."""

from __future__ import annotations

from typing import Any

from openimagine.config import DeliverySettings
from openimagine.domain.requests import SafetyMode, VideoRequest
from openimagine.models.card import ModelCard


def single_video(
    card: ModelCard, limits: DeliverySettings, model: str, prompt: str, **fields: Any
) -> VideoRequest:
    """One video of `model` for `prompt`; `fields` set its size, length and inputs (each
    None unless given)."""
    quality = card.output_quality.default
    assert quality is not None  # noqa: S101 - the card sets one
    return VideoRequest(
        model=model,
        prompt=prompt,
        output_format=card.default_output_format,
        output_quality=quality,
        ttl_s=limits.default_ttl_s,
        number_results=1,
        include_cost=True,
        safety_mode=SafetyMode.NONE,
        **{"width": None, "height": None, "resolution": None, "duration_s": None, **fields},
    )

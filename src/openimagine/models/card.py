"""The `ModelCard` type: a model's contract as data, read by validation and pricing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Size:
    """One supported output configuration, e.g. `480p (16:9)` = 848×480."""

    width: int
    height: int
    tier: str
    aspect: str

    @property
    def label(self) -> str:
        """`WIDTHxHEIGHT`."""
        return f"{self.width}x{self.height}"

    @property
    def ratio(self) -> float:
        """Nominal aspect ratio (from the label, not the pixel counts: 848×480 is 16:9)."""
        w, h = self.aspect.split(":")
        return int(w) / int(h)


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive integer range with a default."""

    min: int
    max: int
    default: int | None = None

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.min <= value <= self.max


@dataclass(frozen=True, slots=True)
class PriceList:
    """USD prices: per output second by tier, per task with an image input, per input second
    of video."""

    per_second: dict[str, Decimal]
    image_input: Decimal
    video_input_per_second: Decimal


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A model's whole public contract."""

    id: str
    name: str
    capabilities: tuple[str, ...]
    sizes: tuple[Size, ...]
    resolutions: tuple[str, ...]
    default_resolution: str
    duration: Range
    video_duration: Range
    fps: int
    output_types: tuple[str, ...]
    output_formats: tuple[str, ...]
    default_output_format: str
    output_quality: Range
    number_results: Range
    min_ttl_s: int
    delivery_methods: tuple[str, ...]
    safety_modes: tuple[str, ...]
    frame_positions: tuple[str | int, ...]
    prices: PriceList
    prompt_max_chars: int
    task_fields: frozenset[str]
    input_fields: frozenset[str]
    #: seconds an extension adds, and how long its input may be (None: no extension)
    extension: Range | None = None
    extension_input: Range | None = None

    def size(self, width: int, height: int) -> Size | None:
        """The supported size with these dimensions, if any."""
        for s in self.sizes:
            if s.width == width and s.height == height:
                return s
        return None

    def nearest_size(self, tier: str, width: int, height: int) -> Size:
        """The size of `tier` whose aspect ratio is nearest width:height (log distance)."""
        target = math.log(width / height)
        candidates = [s for s in self.sizes if s.tier == tier]
        return min(candidates, key=lambda s: abs(math.log(s.ratio) - target))

    def tier(self, width: int, height: int) -> str:
        """The price tier of a supported size (KeyError for any other)."""
        size = self.size(width, height)
        if size is None:
            raise KeyError(f"{width}x{height} is not a size of {self.id}")
        return size.tier

    def tier_for_source(self, width: int, height: int) -> str:
        """The price/size tier a source of this size maps to (its short side)."""
        return "720p" if min(width, height) >= 720 else "480p"

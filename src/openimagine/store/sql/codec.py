"""How a resolved job is stored: JSON text in `jobs.request` (orjson; perf: it is written on
every submit and read on every poll)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import orjson

from openimagine.domain.generation import GenerationJob
from openimagine.domain.requests import Mode, SafetyMode

_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationJob))


def spec_json(spec: GenerationJob) -> str:
    """The stored form (`source_seconds` as "101/15")."""
    data = {name: getattr(spec, name) for name in _FIELDS}
    if spec.source_seconds is not None:
        data["source_seconds"] = str(spec.source_seconds)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def spec_from_json(raw: str | bytes) -> GenerationJob:
    """Inverse of `spec_json`."""
    data: dict[str, Any] = orjson.loads(raw)
    data["mode"] = Mode(data["mode"])
    data["safety_mode"] = SafetyMode(data["safety_mode"])
    data["reference_images"] = tuple(data.get("reference_images") or ())
    if data.get("source_seconds") is not None:
        data["source_seconds"] = Fraction(data["source_seconds"])
    return GenerationJob(**data)

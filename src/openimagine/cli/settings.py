"""Settings for a command: the environment's, with its options layered on top."""

from __future__ import annotations

from typing import Any

from openimagine.config import Settings


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI options (`group__field=value`, None: not
    given) layered on top."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        group, _, field = key.partition("__")
        if field:
            nested.setdefault(group, {})[field] = value
        else:
            nested[key] = value
    merged = Settings().model_dump()
    for key, value in nested.items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) else value
    return Settings.model_validate(merged)

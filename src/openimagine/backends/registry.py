"""Backends by name, from the `openimagine.backends` entry-point group.

A package adds a backend by declaring, in its `pyproject.toml`,
`[project.entry-points."openimagine.backends"] NAME = "pkg.module:factory"`, where `factory`
takes the `Settings` and returns a `VideoBackend` (it is called only in worker processes).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import cast

from openimagine.backends.base import VideoBackend
from openimagine.config import Settings

GROUP = "openimagine.backends"

BackendFactory = Callable[[Settings], VideoBackend]


def available() -> list[str]:
    """The names of the installed backends."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def make_backend(settings: Settings) -> VideoBackend:
    """The backend `settings.model.backend` names, made from the settings."""
    name = settings.model.backend
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise LookupError(
            f"no backend named {name!r} (installed: {', '.join(available()) or 'none'})"
        )
    factory = cast(BackendFactory, found[0].load())
    return factory(settings)

"""openimagine: a self-hosted server for the xai:grok-imagine@video model API."""

from __future__ import annotations

from openimagine.__about__ import __version__

__all__ = ["__version__"]

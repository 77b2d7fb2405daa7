"""openimagine: a self-hosted server for the xai:grok-imagine@video model API.

`Client` and `AsyncClient` (see `openimagine.client`) load on first use, so importing the
package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openimagine.__about__ import __version__

if TYPE_CHECKING:
    from openimagine.client import AsyncClient, Client, ClientError

__all__ = ["AsyncClient", "Client", "ClientError", "__version__"]
_CLIENT_NAMES = frozenset({"AsyncClient", "Client", "ClientError"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from openimagine import client

        return getattr(client, name)
    raise AttributeError(f"module 'openimagine' has no attribute {name!r}")

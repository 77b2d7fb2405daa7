"""`openimagine keys create | list | revoke`."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer
from rich.console import Console

from openimagine import composition
from openimagine.cli.options import DataDir, StoreUrl
from openimagine.cli.settings import make_settings
from openimagine.service.auth import generate_key

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command("create")
def create(
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create a key; it is printed once and stored hashed."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    key = generate_key()
    anyio.run(composition.add_key, settings, key, label)
    console.print(key)


@app.command("list")
def list_keys(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """List keys (prefix, label, state)."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    for k in anyio.run(composition.list_keys, settings):
        state = "revoked" if k.revoked_at else "active"
        console.print(f"{k.prefix}…  {state:8} {k.label}")


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (as listed) or id.")],
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Revoke a key by its prefix or id."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    if not anyio.run(composition.revoke_key, settings, key.rstrip("…")):
        err.print(f"No active key matches {key!r}.")
        raise typer.Exit(1)
    console.print(f"revoked {key}")

"""`openimagine migrate`: create or upgrade the store's schema, then exit.

`serve` and `worker` migrate at start too (under a lock, so they never race this); a fleet
runs this once before a new release starts (deploy/k8s/migrate-job.yaml, deploy/compose.yaml).
"""

from __future__ import annotations

import anyio
import sqlalchemy as sa
import typer

from openimagine import composition
from openimagine.cli.options import DataDir, StoreUrl
from openimagine.cli.serve import shown_store_url
from openimagine.cli.settings import make_settings


def migrate(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Create or upgrade the store's schema to this release's, then exit."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    shown = shown_store_url(settings.store_url())
    try:
        before, after = anyio.run(composition.migrate, settings)
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.__cause__ or exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        typer.echo(f"error: store {shown}: {reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"store: {shown}")
    typer.echo(f"schema: {describe(before, after)}")


def describe(before: str | None, after: str | None) -> str:
    """What a migration did, from the revisions before and after it."""
    if before is None:
        return f"created at revision {after}"
    if before == after:
        return f"already at revision {after}, nothing to do"
    return f"upgraded from revision {before} to {after}"

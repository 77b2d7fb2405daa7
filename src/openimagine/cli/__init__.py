"""The command line: `openimagine serve | worker | migrate | keys | generate | cancel | doctor`.

Each command builds `Settings` from the environment and its options, and calls
`composition` (server commands) or the Python client (client commands).
"""

from __future__ import annotations

import typer

from openimagine.cli import doctor, generate, keys, migrate, serve
from openimagine.observability import configure_logging

app = typer.Typer(
    help="Self-hosted server for the xai:grok-imagine@video model API.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(serve.serve)
app.command()(serve.worker)
app.command()(migrate.migrate)
app.add_typer(keys.app, name="keys")
app.command()(generate.generate)
app.command()(generate.cancel)
app.command()(doctor.doctor)


def main() -> None:
    """Console entry point."""
    configure_logging()
    app()

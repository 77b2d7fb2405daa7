"""`openimagine keys create | list | limits | revoke | usage`."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table

from openimagine import composition
from openimagine.cli.options import DataDir, StoreUrl
from openimagine.cli.settings import make_settings
from openimagine.domain.quotas import Limits
from openimagine.errors import InvalidInput
from openimagine.service.auth import generate_key
from openimagine.service.usage import Period, moment

app = typer.Typer(help="Create, list and revoke API keys; see their usage.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


MaxQueued = Annotated[
    int | None, typer.Option(min=0, help="Tasks it may have queued (0: no limit).")
]
MaxRunning = Annotated[
    int | None, typer.Option(min=0, help="Tasks of it running at once (0: no limit).")
]
PerMinute = Annotated[
    int | None, typer.Option(min=0, help="Requests a minute, per API process (0: no limit).")
]
Budget = Annotated[
    float | None, typer.Option(min=0, help="Dollars of tasks a UTC day (0: no limit).")
]


@app.command("create")
def create(
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    max_queued: MaxQueued = None,
    max_running: MaxRunning = None,
    requests_per_minute: PerMinute = None,
    daily_budget_usd: Budget = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create a key; it is printed once and stored hashed. Limits not given are the
    server's (`OPENIMAGINE_QUOTAS__*`)."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    key = generate_key()
    limits = Limits(max_queued, max_running, requests_per_minute, daily_budget_usd)
    anyio.run(composition.add_key, settings, key, label, limits)
    console.print(key)


@app.command("limits")
def limits(
    key: Annotated[str, typer.Argument(help="The key's prefix (as listed) or id.")],
    max_queued: MaxQueued = None,
    max_running: MaxRunning = None,
    requests_per_minute: PerMinute = None,
    daily_budget_usd: Budget = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Show a key's limits, changing those given first (running servers apply them within
    5 s)."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    changes = Limits(max_queued, max_running, requests_per_minute, daily_budget_usd)
    found = anyio.run(composition.key_limits, settings, key.rstrip("…"), changes)
    if found is None:
        err.print(f"No active key matches {key!r}.")
        raise typer.Exit(1)
    stored, effective = found
    for name, value in dataclasses.asdict(effective).items():
        own = getattr(stored.limits, name) is not None
        shown = "no limit" if not value else f"{value:g}"
        console.print(f"{name:20} {shown:>10}  {'(this key)' if own else '(server default)'}")


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


@app.command("usage")
def usage(
    start: Annotated[
        str | None, typer.Option(help="From: an ISO 8601 date or time (default 30 days ago).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Until, excluded (default now).")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Every key's usage over a period: tasks, results, seconds of video and cost."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    try:
        period = Period.of(moment(start, "start"), moment(end, "end"), time.time())
    except InvalidInput as exc:
        err.print(exc.message)
        raise typer.Exit(2) from None
    keys, totals = anyio.run(composition.usage_by_key, settings, period)
    table = Table("key", "label", "tasks", "results", "failed", "seconds", "cost ($)")
    for t in totals:
        key = keys.get(t.owner)
        table.add_row(
            f"{key.prefix}…" if key else t.owner, key.label if key else "(deleted key)",
            str(t.tasks), str(t.results), str(t.failed), f"{t.seconds:.2f}", f"{t.cost:.4f}",
        )  # fmt: skip
    when = f"{_iso(period.start)} to {_iso(period.end)}"
    console.print(table if totals else f"No usage from {when}.")
    if totals:
        console.print(f"from {when}; total ${sum(t.cost for t in totals):.4f}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

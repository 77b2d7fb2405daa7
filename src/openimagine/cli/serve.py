"""`openimagine serve` (the API and its workers) and `openimagine worker` (workers alone)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import anyio
import typer
from rich.console import Console

from openimagine import composition
from openimagine.cli.options import BlobsUrl, DataDir, StoreUrl
from openimagine.cli.settings import make_settings
from openimagine.config import Settings
from openimagine.metrics.exposition import serve_exposition, worker_metrics_server
from openimagine.observability import configure_logging, uvicorn_log_config

console = Console()
err = Console(stderr=True)


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Bind address. Default: OPENIMAGINE_SERVER__HOST, else 127.0.0.1."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port. Default: OPENIMAGINE_SERVER__PORT, else 8765.")
    ] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
    blobs: BlobsUrl = None,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="Accept this API key (repeatable).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    public_url: Annotated[str | None, typer.Option(help="Base URL for result links.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Also serve xAI's gRPC video API (for xAI's Python SDK) on this port of the "
            "same host; 0: off. Default: OPENIMAGINE_SERVER__GRPC_PORT, else off.",
        ),
    ] = None,
) -> None:
    """Start the API and its local worker process(es)."""
    import uvicorn

    settings = make_settings(
        data_dir=data_dir,
        server__host=host,
        server__port=port,
        store__url=store,
        blobs__url=blobs,
        workers__count=workers,
        server__public_url=public_url,
        server__grpc_port=grpc_port,
        api_keys=(api_key or None),
    )
    configure_logging(settings.log.format)
    _refuse_an_open_server(settings)
    try:
        composition.check_grpc(settings)
    except ValueError as e:
        err.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    new_key = anyio.run(_prepare, settings)
    _banner(settings, new_key)
    # Before the workers start (they inherit its directory) and before the API records.
    metrics = serve_exposition(settings)
    pool = composition.start_workers(settings, settings.workers.count)
    # uvicorn re-raises the signal that stopped it once it has shut down; with Python's default
    # SIGTERM action that would end this process before the workers are stopped. A no-op
    # handler lets the `finally` run; uvicorn installs its own while serving.
    signal.signal(signal.SIGTERM, lambda *_: None)
    app = composition.build_api(settings)
    app.state.metrics = metrics  # GET /metrics (api/metrics.py)
    composition.tune_gc()
    try:
        uvicorn.run(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_level="info",
            access_log=access_log,
            log_config=uvicorn_log_config(settings.log.format),
            ws_max_size=settings.server.max_body_bytes,
        )
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()
        if metrics is not None:
            metrics.close()


def _refuse_an_open_server(settings: Settings) -> None:
    """A server reachable beyond this machine must have a key."""
    host = settings.server.host
    if (
        not composition.is_loopback(host)
        and not settings.api_keys
        and not anyio.run(composition.has_active_key, settings)
    ):
        err.print(
            f"[red]Refusing to bind {host} without an API key.[/] Pass --api-key KEY, "
            "or create one with `openimagine keys create`."
        )
        raise typer.Exit(2)


async def _prepare(settings: Settings) -> str | None:
    return await composition.prepare_store(settings, create_key=True)


def _banner(settings: Settings, new_key: str | None) -> None:
    weights, random_weights = composition.weights_label(settings)
    console.print(
        f"[bold]openimagine[/] serving xai:grok-imagine@video at "
        f"{settings.public_url()}/v1 (REST and WebSocket)"
    )
    if settings.server.grpc_port:
        tls = "TLS" if settings.server.grpc_tls() else "plaintext"
        console.print(f"  gRPC (xAI's Python SDK): {settings.server.grpc_address()} ({tls})")
    store = shown_store_url(settings.store_url())
    console.print(f"  store: {store}   data: {settings.data_dir.resolve()}")
    console.print(f"  weights: {weights}   workers: {settings.workers.count}")
    if random_weights:
        console.print(
            "  [yellow bold]RANDOM WEIGHTS:[/][yellow] the offline tiny model's video "
            "and audio are noise. Set OPENIMAGINE_MODEL__CHECKPOINT for real output.[/]"
        )
    if new_key:
        console.print(f"  [green]API key created (shown once, stored hashed):[/] {new_key}")


def shown_store_url(url: str) -> str:
    """The store URL as the banner prints it: a password, in the user info or the query
    (`?password=`, which psycopg takes too), masked as `***`."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url  # not a URL (`memory`), so no password in it
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def worker(
    data_dir: DataDir = None,
    store: StoreUrl = None,
    blobs: BlobsUrl = None,
    count: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes. Default: OPENIMAGINE_WORKERS__COUNT, else 1."),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(hidden=True, help="Ignored: workers no longer make result links."),
    ] = None,
) -> None:
    """Start worker processes alone, against the same store as a server."""
    del public_url  # compat: accepted so that scripts written for 0.1 keep working
    settings = make_settings(
        data_dir=data_dir, store__url=store, blobs__url=blobs, workers__count=count
    )
    configure_logging(settings.log.format)
    if settings.workers.count < 1:
        err.print("[red]Nothing to run:[/] OPENIMAGINE_WORKERS__COUNT is 0 (pass --count N).")
        raise typer.Exit(2)
    anyio.run(composition.migrate, settings)
    metrics = worker_metrics_server(settings)  # before the workers start: they inherit it
    pool = composition.start_workers(settings, settings.workers.count)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    pool.stop()
    if metrics is not None:
        metrics.close()

"""`openimagine serve | worker | keys | generate | cancel | doctor`: the command line, and the
composition root."""

from __future__ import annotations

import logging
import signal
import uuid
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console

from openimagine.client import Client, ClientError, VideoOptions
from openimagine.composition import (
    build_app,
    has_active_key,
    is_loopback,
    prepare_store,
    weights_label,
)
from openimagine.config import Settings
from openimagine.display import Display
from openimagine.doctor import run_checks
from openimagine.embedded import EmbeddedServer, EmbeddedServerError
from openimagine.generate import (
    INTERRUPTED,
    fail,
    fail_client,
    media_options,
    output_format,
    output_paths,
    quiet_http,
    run,
    server_answers,
)
from openimagine.keys import generate_key, hash_key, key_prefix
from openimagine.store.sql import SqlStore

app = typer.Typer(
    help="Self-hosted server for the xai:grok-imagine@video model API.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]
StoreUrl = Annotated[str | None, typer.Option("--store", help="Store URL (default: SQLite).")]


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI options layered on top."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        group, _, field = key.partition("__")
        if field:
            nested.setdefault(group, {})[field] = value
        else:
            nested[key] = value
    base = Settings()
    merged = base.model_dump()
    for key, value in nested.items():
        if isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return Settings.model_validate(merged)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    data_dir: DataDir = None,
    store: StoreUrl = None,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="Accept this API key (repeatable).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    public_url: Annotated[str | None, typer.Option(help="Base URL for result links.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Start the API and its local worker process(es)."""
    import uvicorn

    from openimagine.worker.pool import WorkerPool

    settings = make_settings(
        data_dir=data_dir,
        server__host=host,
        server__port=port,
        store__url=store,
        workers__count=workers,
        server__public_url=public_url,
        api_keys=(api_key or None),
    )
    if not is_loopback(host) and not settings.api_keys and not anyio.run(has_active_key, settings):
        err.print(
            f"[red]Refusing to bind {host} without an API key.[/] Pass --api-key KEY, "
            "or create one with `openimagine keys create`."
        )
        raise typer.Exit(2)
    new_key = anyio.run(_prepare, settings)
    _banner(settings, new_key)
    pool = WorkerPool(settings, settings.workers.count)
    pool.start()
    # uvicorn re-raises the signal that stopped it once it has shut down; with Python's default
    # SIGTERM action that would end this process before the workers are stopped. A no-op
    # handler lets the `finally` run; uvicorn installs its own while serving.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(
            build_app(settings),
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            ws_max_size=settings.server.max_body_bytes,
        )
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()


async def _prepare(settings: Settings) -> str | None:
    return await prepare_store(settings, create_key=True)


def _banner(settings: Settings, new_key: str | None) -> None:
    weights, random_weights = weights_label(settings)
    console.print(
        f"[bold]openimagine[/] serving xai:grok-imagine@video at "
        f"{settings.public_url()}/v1 (REST and WebSocket)"
    )
    console.print(f"  store: {settings.store_url()}   data: {settings.data_dir.resolve()}")
    console.print(f"  weights: {weights}   workers: {settings.workers.count}")
    if random_weights:
        console.print(
            "  [yellow bold]RANDOM WEIGHTS:[/][yellow] the offline tiny model's video "
            "and audio are noise. Set OPENIMAGINE_MODEL__CHECKPOINT for real output.[/]"
        )
    if new_key:
        console.print(f"  [green]API key created (shown once, stored hashed):[/] {new_key}")


@app.command()
def worker(
    data_dir: DataDir = None,
    store: StoreUrl = None,
    count: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    public_url: Annotated[str | None, typer.Option(help="Base URL for result links.")] = None,
) -> None:
    """Start worker processes alone, against the same store as a server."""
    import threading

    from openimagine.worker.pool import WorkerPool

    settings = make_settings(data_dir=data_dir, store__url=store, server__public_url=public_url)
    anyio.run(_migrate, settings)
    pool = WorkerPool(settings, count)
    pool.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    pool.stop()


async def _migrate(settings: Settings) -> None:
    s = SqlStore(settings.store_url(), pool_size=1)
    try:
        await s.migrate()
    finally:
        await s.close()


@keys_app.command("create")
def keys_create(
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Create a key; it is printed once and stored hashed."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    key = generate_key()

    async def run() -> None:
        s = SqlStore(settings.store_url(), pool_size=1)
        try:
            await s.migrate()
            await s.add_api_key(hash_key(key), label, key_prefix(key))
        finally:
            await s.close()

    anyio.run(run)
    console.print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """List keys (prefix, label, state)."""
    settings = make_settings(data_dir=data_dir, store__url=store)

    async def run() -> list[Any]:
        s = SqlStore(settings.store_url(), pool_size=1)
        try:
            await s.migrate()
            return await s.list_api_keys()
        finally:
            await s.close()

    for k in anyio.run(run):
        state = "revoked" if k.revoked_at else "active"
        console.print(f"{k.prefix}…  {state:8} {k.label}")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (as listed) or id.")],
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Revoke a key by its prefix or id."""
    settings = make_settings(data_dir=data_dir, store__url=store)

    async def run() -> bool:
        s = SqlStore(settings.store_url(), pool_size=1)
        try:
            return await s.revoke_api_key(key.rstrip("…"))
        finally:
            await s.close()

    if not anyio.run(run):
        err.print(f"No active key matches {key!r}.")
        raise typer.Exit(1)
    console.print(f"revoked {key}")


# -- the client commands ----------------------------------------------------------------------

ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Server URL. Default: the local server (http://127.0.0.1:8765, or as "
        "OPENIMAGINE_SERVER__* set it); `generate` starts one for the call if none answers.",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="OPENIMAGINE_API_KEY", help="API key.", show_default=False),
]


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to save (with -n: NAME-2.EXT, …).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="First frame: a local file or URL.")] = None,
    video: Annotated[
        str | None, typer.Option(help="Video to transform: local file or URL.")
    ] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 1280x720.")] = None,
    resolution: Annotated[
        str | None, typer.Option(help="480p or 720p (16:9 unless --image sets the shape).")
    ] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds (1-15).")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="MP4, WEBM or MOV (default: from -o).")
    ] = None,
    quality: Annotated[int | None, typer.Option(help="Output quality, 20-99.")] = None,
    number: Annotated[int, typer.Option("-n", "--number", help="Videos to make (1-4).")] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed, for repeatable output.")] = None,
    server: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory of a server started here.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 3600,
) -> None:
    """Generate a video and save it: `openimagine generate "a lighthouse" -o storm.mp4`."""
    quiet_http()
    fmt = output_format(fmt, output)
    opts = media_options(image, video, size, resolution)
    opts.update(
        VideoOptions(
            task_uuid=str(uuid.uuid4()), output_format=fmt, number_results=number, include_cost=True
        )
    )
    if duration is not None:
        opts["duration"] = duration
    if quality is not None:
        opts["output_quality"] = quality
    if seed is not None:
        opts["seed"] = seed
    paths = output_paths(output, prompt, fmt, number)
    settings = make_settings(data_dir=data_dir)
    embedded: EmbeddedServer | None = None
    try:
        with Display(err) as display:
            url = server or settings.public_url()
            if server is None and not server_answers(url):
                display.stage("starting a local server (its first start builds the model)")
                embedded = EmbeddedServer(settings)
                embedded.start()
                embedded.wait_ready(timeout=600)
                url, api_key = embedded.base_url, embedded.key
            with Client(url, api_key) as client:
                run(client, display, prompt, opts, paths, timeout)
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
    except ClientError as exc:
        fail_client(exc)
    except (EmbeddedServerError, OSError) as exc:
        fail(str(exc))
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def cancel(
    task_uuid: Annotated[str, typer.Argument(help="The task's UUID.", show_default=False)],
    server: ServerUrl = None,
    api_key: ApiKey = None,
    data_dir: DataDir = None,
) -> None:
    """Cancel a task (queued: at once; running: within one denoising step)."""
    quiet_http()
    url = server or make_settings(data_dir=data_dir).public_url()
    try:
        with Client(url, api_key) as client:
            state = client.cancel(task_uuid)
    except ClientError as err:
        fail_client(err)
    typer.echo(f"{task_uuid} {state}")


@app.command()
def doctor(data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Check this machine: PyAV encoders, torch and CUDA, weights, store, free disk."""
    settings = make_settings(data_dir=data_dir, store__url=store)
    checks = run_checks(settings)
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.essential else "warn")
        typer.echo(f"{mark}  {c.name:<{width}}  {c.detail}")
    failed = [c.name for c in checks if c.essential and not c.ok]
    if failed:
        typer.echo(f"missing or broken: {', '.join(failed)}", err=True)
        raise typer.Exit(1)
    typer.echo("everything essential is in place")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app()

"""`openimagine generate` and `openimagine cancel`: turn the options into a task, run it with
`Client`, save the videos; every failure becomes one line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Annotated, NoReturn, cast

import typer
from rich.console import Console

from openimagine.cli.display import Display
from openimagine.cli.embedded import EmbeddedServer, EmbeddedServerError
from openimagine.cli.options import ApiKey, DataDir, ServerUrl
from openimagine.cli.settings import make_settings
from openimagine.client import Client, ClientError, VideoOptions, media_input, parse_size
from openimagine.config import Settings

RESOLUTION_SIZES = {"480p": (848, 480), "720p": (1280, 720)}  # 16:9 when no image sets the shape
DEFAULT_SIZE = (848, 480)
FORMATS = {".mp4": "MP4", ".webm": "WEBM", ".mov": "MOV"}
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
_HINTS = {
    "missingApiKey": " (pass --api-key or set OPENIMAGINE_API_KEY)",
    "invalidApiKey": " (check --api-key or OPENIMAGINE_API_KEY)",
}


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, no traceback, and a non-zero exit."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def fail_client(err: ClientError) -> NoReturn:
    """`fail` with a server's (or the connection's) error, and a hint for a key problem."""
    hint = _HINTS.get(err.code, "")
    fail(f"{err}{hint}")


def quiet_http() -> None:
    """httpx logs every request at INFO; a client command shows its own progress instead."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def media_options(
    image: str | None, video: str | None, size: str | None, resolution: str | None
) -> VideoOptions:
    """The media and size options, checked (files read) before any server is contacted.

    Without an image or video, `--resolution` picks the 16:9 size of that tier and no size
    at all gives 848x480; with an image, `--resolution` is sent as is.
    """
    opts: VideoOptions = {}
    try:
        if size is not None and resolution is not None:
            raise ValueError("use --size or --resolution, not both")
        if image is not None:
            opts["image"] = media_input(image, "--image")
        if video is not None:
            opts["video"] = media_input(video, "--video")
        if size is not None:
            opts["size"] = parse_size(size)
        elif resolution is not None and image is None and video is None:
            opts["size"] = RESOLUTION_SIZES.get(resolution.lower()) or parse_size(resolution)
        elif resolution is not None:
            opts["resolution"] = resolution.lower()
        elif image is None and video is None:
            opts["size"] = DEFAULT_SIZE
    except (OSError, ValueError) as exc:
        fail(str(exc))
    return opts


def output_format(fmt: str | None, output: Path | None) -> str:
    """--format, else the one -o's extension names, else MP4."""
    if fmt is not None:
        return fmt.upper()
    return FORMATS.get(output.suffix.lower(), "MP4") if output is not None else "MP4"


def output_paths(output: Path | None, prompt: str, fmt: str, n: int) -> list[Path]:
    """storm.mp4, storm-2.mp4, ... (without -o: named after the prompt's first words)."""
    if output is None:
        slug = "-".join(re.findall(r"[a-z0-9]+", prompt.lower())[:6]) or "video"
        output = Path(f"{slug}.{fmt.lower()}")
    rest = (output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(2, n + 1))
    return [output, *rest]


def server_answers(url: str) -> bool:
    """Whether an openimagine server answers at `url`."""
    try:
        with Client(url, timeout=2.0) as client:
            client.health()
    except ClientError:
        return False
    return True


def run(
    client: Client,
    display: Display,
    prompt: str,
    opts: VideoOptions,
    paths: list[Path],
    timeout: float,
) -> None:
    """Submit, wait with progress, download; Ctrl-C while waiting cancels the task."""
    task_uuid = opts.get("task_uuid") or ""
    try:
        client.submit(prompt, **opts)
        display.note(f"task {task_uuid} at {client.base_url}")
        if client.health().get("randomWeights"):
            display.note("note: the server's model has random weights, so the video is noise")
        done = client.wait(
            task_uuid, timeout=timeout, on_progress=display.task, raise_on_error=False
        )
    except KeyboardInterrupt:
        display.stop()
        _cancel(client, task_uuid)
    for path, item in zip(paths, done.videos, strict=False):
        display.stage(f"downloading {path.name}", 0)
        client.download(item, path, on_progress=display.bytes)
        display.stop()
        cost = f", ${item.cost:.2f}" if item.cost is not None else ""
        typer.echo(f"saved {path} (seed {item.seed}{cost})")
    for error in done.errors:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
    if done.errors:
        raise typer.Exit(1)


def _cancel(client: Client, task_uuid: str) -> NoReturn:
    try:
        state = client.cancel(task_uuid)
    except ClientError as err:
        fail(f"interrupted; could not cancel task {task_uuid}: {err}", INTERRUPTED)
    typer.echo(f"interrupted: task {task_uuid} cancelled ({state})", err=True)
    raise typer.Exit(INTERRUPTED)


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
    opts.update(_given(duration=duration, output_quality=quality, seed=seed))
    paths = output_paths(output, prompt, fmt, number)
    _generate(prompt, opts, paths, server, api_key, make_settings(data_dir=data_dir), timeout)


def _given(**options: int | None) -> VideoOptions:
    """The options that were given."""
    return cast(VideoOptions, {k: v for k, v in options.items() if v is not None})


def _generate(
    prompt: str,
    opts: VideoOptions,
    paths: list[Path],
    server: str | None,
    api_key: str | None,
    settings: Settings,
    timeout: float,
) -> None:
    """Run the task on `server`, or on a server started here when none answers."""
    embedded: EmbeddedServer | None = None
    try:
        with Display(Console(stderr=True)) as display:
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

"""Options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]
StoreUrl = Annotated[str | None, typer.Option("--store", help="Store URL (default: SQLite).")]
BlobsUrl = Annotated[
    str | None,
    typer.Option(
        "--blobs",
        # No square brackets: typer renders help as rich markup.
        help="Where result and input files live: a directory (default: <data-dir>/blobs), or "
        "s3://BUCKET or s3://BUCKET/PREFIX (with OPENIMAGINE_BLOBS__S3_ENDPOINT_URL and the "
        "AWS_* variables).",
    ),
]
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

"""`openimagine doctor`: what this machine has for serving, each finding one `Check`.

Read-only: the store is connected to and its schema revision compared with the newest one,
but nothing is created or migrated. An S3 blob store gets a small probe object, deleted again.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from openimagine.cli.options import BlobsUrl, DataDir, StoreUrl
from openimagine.cli.serve import shown_store_url
from openimagine.cli.settings import make_settings
from openimagine.composition import weights_label
from openimagine.config import Settings

# (encoder, what it is for); all four are needed for the model's three output formats.
ENCODERS = (
    ("libx264", "H.264 video for MP4 and MOV"),
    ("aac", "AAC audio for MP4 and MOV"),
    ("libvpx-vp9", "VP9 video for WEBM"),
    ("libopus", "Opus audio for WEBM"),
)
MIN_FREE_BYTES = 1 << 30
PROBE_RETRY_S = 3.0  # how long each S3 call of the probe retries a server that does not answer


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: `ok` False on an essential check means the server cannot work."""

    name: str
    ok: bool
    detail: str
    essential: bool = True


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order they are shown."""
    checks = _media()
    for check in (_torch, _weights, _store, _blobs, _disk):
        checks.append(_guarded(check, settings))
    return checks


def _guarded(check: Callable[[Settings], Check], settings: Settings) -> Check:
    name = check.__name__.lstrip("_")
    try:
        return check(settings)
    except Exception as exc:  # a check that crashes is a finding, not a traceback
        return Check(name, False, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _media() -> list[Check]:
    try:
        import av
    except ImportError as exc:
        return [Check("PyAV", False, f"not importable ({_first_line(exc)}): pip install av")]
    ffmpeg = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
    checks = [Check("PyAV", True, f"{av.__version__} (libavcodec {ffmpeg})")]
    for name, use in ENCODERS:
        try:
            av.Codec(name, "w")
        except ValueError:
            checks.append(Check(name, False, f"encoder missing from PyAV's FFmpeg ({use})"))
        else:
            checks.append(Check(name, True, f"encoder present ({use})"))
    return checks


def _torch(settings: Settings) -> Check:
    try:
        import torch
    except ImportError:
        return Check("torch", False, "not installed (workers need it): run `make install`")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        cuda = f"CUDA {torch.version.cuda}: {len(names)} device(s): {', '.join(names)}"
    else:
        cuda = "no CUDA devices"
    wants_cuda = settings.workers.device.startswith("cuda")
    ok = not wants_cuda or torch.cuda.is_available()
    note = "" if ok else f" but OPENIMAGINE_WORKERS__DEVICE={settings.workers.device}"
    return Check("torch", ok, f"{torch.__version__}, {cuda}{note}")


def _weights(settings: Settings) -> Check:
    name, random_weights = weights_label(settings)
    checkpoint = settings.model.checkpoint
    if checkpoint is None:
        from openimagine.backends.tiny import tiny_dir

        where = tiny_dir(settings.models_dir())
        state = f"built at {where}" if where.exists() else f"built on first start in {where}"
        return Check(
            "weights", True, f"tiny model {name}, RANDOM weights (output is noise); {state}"
        )
    if not Path(checkpoint).is_dir():
        return Check("weights", False, f"OPENIMAGINE_MODEL__CHECKPOINT {checkpoint}: no such dir")
    kind = "RANDOM weights (output is noise)" if random_weights else "trained weights"
    return Check("weights", True, f"{name} at {checkpoint}, {kind}")


def _store(settings: Settings) -> Check:
    import sqlalchemy as sa

    from openimagine.store.sql.database import normalize_url
    from openimagine.store.sql.revision import current_revision, head_revision

    url = sa.engine.make_url(normalize_url(settings.store_url()))
    shown = shown_store_url(settings.store_url())
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return Check("store", True, f"{shown}: not created yet (created on first start)")
    head = head_revision()
    try:
        current = current_revision(settings.store_url())
    except sa.exc.SQLAlchemyError as exc:
        return Check(
            "store", False, f"{shown}: cannot connect: {_first_line(exc.__cause__ or exc)}"
        )
    if current == head:
        return Check("store", True, f"{shown}: connected, schema at {head}")
    state = "empty" if current is None else f"at {current}"
    return Check(
        "store",
        True,
        f"{shown}: connected, schema {state} (migrated to {head} by `openimagine migrate` or "
        "on start)",
    )


def _blobs(settings: Settings) -> Check:
    if not settings.blobs.is_s3():
        return Check("blobs", True, f"{settings.blob_dir().resolve()} (a local directory)")
    from openimagine.delivery.s3 import S3BlobStore, parse_s3_url

    url = settings.blobs.url or ""
    where = f"{url} at {settings.blobs.s3_endpoint_url or 'AWS'}"
    bucket, prefix = parse_s3_url(url)
    with tempfile.TemporaryDirectory() as scratch:  # doctor leaves nothing behind
        store = S3BlobStore(
            bucket,
            prefix,
            scratch_dir=Path(scratch),
            endpoint_url=settings.blobs.s3_endpoint_url,
            retry_s=min(settings.blobs.s3_retry_s, PROBE_RETRY_S),
        )
        problem = store.probe()
    if problem:
        return Check("blobs", False, f"{where}: cannot {problem}")
    return Check("blobs", True, f"{where}: wrote, read back and deleted a probe object")


def _disk(settings: Settings) -> Check:
    where = settings.data_dir.resolve()
    probe = where
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    ok = free >= MIN_FREE_BYTES
    need = "" if ok else f" (need at least {MIN_FREE_BYTES / 2**30:.0f} GiB)"
    return Check("disk", ok, f"{free / 2**30:.1f} GiB free in {where}{need}")


def doctor(data_dir: DataDir = None, store: StoreUrl = None, blobs: BlobsUrl = None) -> None:
    """Check this machine: PyAV encoders, torch and CUDA, weights, store, blob store (an S3
    bucket is written to, read and cleaned up), free disk."""
    settings = make_settings(data_dir=data_dir, store__url=store, blobs__url=blobs)
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

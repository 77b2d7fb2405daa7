"""One `Settings` object, built once by the CLI (or a test) and passed down explicitly."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseModel):
    """The HTTP/WebSocket front door, and the optional gRPC one (xAI's Python SDK)."""

    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str | None = Field(
        default=None,
        description="Base URL that result links point at; defaults to http://host:port.",
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    ws_idle_timeout_s: float = 120.0
    # Off by default: nothing new listens unless asked, and no client would find the door by
    # itself anyway (xAI's SDK goes to api.x.ai until it is given `api_host`).
    grpc_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the gRPC door for xAI's Python SDK (service xai_api.Video), on "
        "`host`; 0: off. Plaintext only on a loopback host unless grpc_tls_cert and "
        "grpc_tls_key are set.",
    )
    grpc_tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain of the gRPC door (with grpc_tls_key)."
    )
    grpc_tls_key: Path | None = Field(
        default=None, description="PEM private key of the gRPC door (with grpc_tls_cert)."
    )

    @model_validator(mode="after")
    def _grpc(self) -> ServerSettings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("grpc_tls_cert and grpc_tls_key go together: set both or neither.")
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(f"grpc_port: {self.grpc_port} is the HTTP port; pick another.")
        return self

    def grpc_tls(self) -> bool:
        """Whether the gRPC door serves TLS."""
        return self.grpc_tls_cert is not None

    def grpc_address(self) -> str:
        """`host:port` of the gRPC door (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.grpc_port}"


class StoreSettings(BaseModel):
    """Where jobs, results, keys and the outbox live (the store is the queue)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite (WAL) at <data_dir>/openimagine.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    pool_size: int = 10


class WorkerSettings(BaseModel):
    """The generation workers: one process per device."""

    count: int = Field(default=1, ge=0, description="Local worker processes `serve` starts.")
    device: str = "cpu"
    torch_threads: int | None = None
    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)
    poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Longest an idle worker sleeps between looks at the queue; a submit wakes "
        "it at once (LISTEN/NOTIFY on PostgreSQL, a doorbell socket on SQLite).",
    )
    max_attempts: int = Field(default=3, ge=1)
    models: list[str] = Field(
        default_factory=list,
        description="The model AIRs (e.g. xai:grok-imagine@video) whose tasks these workers "
        "claim, as a JSON list; empty: any model. A fleet can so mix models.",
    )
    max_pixel_frames: int = Field(
        default=0,
        ge=0,
        description="The largest task (width × height × frames) these workers claim; 0: any. "
        "A worker on a small GPU leaves bigger tasks to others (720p × 15 s at 24 fps, "
        "1280×720×360, is 331,776,000).",
    )
    progress_interval_s: float = Field(
        default=0.5, gt=0, description="How often a running job's progress is written."
    )
    encode_threads: int = Field(default=2, ge=1)
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="`openimagine worker` only: serve Prometheus metrics of its worker "
        "processes on this port (0: off). Under `serve`, the API's /metrics has them.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the worker metrics port binds (0.0.0.0 to be scraped from "
        "another host).",
    )


class ModelSettings(BaseModel):
    """Which weights serve `xai:grok-imagine@video`."""

    checkpoint: str | None = Field(
        default=None,
        description="A diffusers LTX-2 checkpoint directory. Unset: the offline tiny model "
        "with random weights, built on first use in <data_dir>/models.",
    )
    backend: str = Field(
        default="ltx2",
        description="The backend (an entry point of the `openimagine.backends` group).",
    )
    steps: int | None = Field(default=None, ge=1, description="Denoising steps override.")
    allow_hub_download: bool = Field(
        default=False, description="Allow a hub id as checkpoint (never used by default)."
    )
    fixture_seconds: float = Field(
        default=0.0,
        ge=0,
        description="The `fixture` backend only (a test pattern, no model): seconds each clip "
        "takes, standing in for a model's time in load tests and benchmarks.",
    )


class DeliverySettings(BaseModel):
    """Result URLs and their lifetime."""

    default_ttl_s: int = Field(default=24 * 3600, ge=60)
    max_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    signing_secret: str | None = Field(
        default=None,
        description="HMAC secret for result URLs; created once in <data_dir>/secret if unset.",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_<base64>) that signs webhook POSTs; "
        "created once in <data_dir>/webhook-secret if unset.",
    )
    sweep_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often result files whose URLs expired, and expired inputs, are deleted.",
    )
    webhook_max_attempts: int = Field(default=8, ge=1, description="Tries before giving up.")
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for any one read or write of a try."
    )
    webhook_deadline_s: float = Field(
        default=30.0, gt=0, description="Longest a webhook POST may take in all (then retried)."
    )
    upload_deadline_s: float = Field(
        default=600.0, gt=0, description="Longest an upload PUT may take in all (then retried)."
    )
    per_host: int = Field(
        default=4, ge=1, description="Deliveries in flight to one receiver (host and port)."
    )
    in_flight: int = Field(default=64, ge=1, description="Deliveries in flight in all.")
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles each try, with jitter."
    )
    webhook_backoff_max_s: float = Field(default=600.0, gt=0)


class BlobSettings(BaseModel):
    """Where result and input files live: a local directory, or an S3-compatible bucket that
    API replicas and workers on several hosts share (delivery/s3.py)."""

    url: str | None = Field(
        default=None,
        description="A directory (default: <data_dir>/blobs), or s3://bucket[/prefix]. For S3, "
        "credentials and region come from the standard AWS variables (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION) or the host's role.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 API of a server other than AWS (MinIO, SeaweedFS, R2, ...), e.g. "
        "http://127.0.0.1:8333. Presigned result URLs point at it: clients must reach it too.",
    )
    s3_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="How long one S3 operation retries transient failures (connection "
        "errors, 5xx) before it fails; a worker's task then fails with storageError.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None or "://" not in url or url.startswith("file://"):
            return url
        bucket = url.removeprefix("s3://").partition("/")[0]
        if not url.startswith("s3://") or len(bucket) < 3:
            raise ValueError("expected a directory or s3://bucket[/prefix] (bucket: 3+ chars)")
        return url

    def is_s3(self) -> bool:
        """Whether blobs live in a bucket."""
        return bool(self.url and self.url.startswith("s3://"))


class InputSettings(BaseModel):
    """Limits on the images and videos a task brings, checked before they are decoded."""

    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_video_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    max_video_pixels: int = Field(default=3840 * 2160, ge=1)
    max_video_seconds: float = Field(default=30.0, gt=0)
    max_video_frames: int = Field(default=1800, ge=1)
    fetch_timeout_s: float = Field(default=15.0, gt=0, description="Per URL fetch.")
    max_redirects: int = Field(default=5, ge=0)
    media_ttl_s: int = Field(
        default=30 * 24 * 3600,
        ge=1,
        description="Uploaded media (imageUpload, mediaStorage) is kept this long after its "
        "upload or its last use by a task, as on Runware (30 days after last use).",
    )
    fetched_ttl_s: int = Field(
        default=3600,
        ge=1,
        description="Inputs a task brings as a URL, data URI or base64 are kept this long "
        "after the submit (and always while a queued or running task uses them).",
    )
    max_reference_images: int = Field(
        default=8, ge=1, description="Most items in inputs.referenceImages."
    )
    decode_concurrency: int = Field(
        default=2,
        ge=1,
        description="Inputs decoded and checked at once (in threads): bounds the memory that "
        "many concurrent submits with large images or videos take.",
    )


# NudeNet's detector classes, in the order of the model's output rows (worker/safety.py).
NudeNetLabel = Literal[
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
]

DEFAULT_NSFW_LABELS: tuple[NudeNetLabel, ...] = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


class SafetySettings(BaseModel):
    """Content checks (`safety.checkContent`/`safety.mode`): NudeNet in the workers."""

    action: Literal["flag", "block"] = Field(
        default="flag",
        description="flag: report NSFWContent: true and serve the result; block: the result "
        "becomes an error (nsfwContentDetected) and its file is never stored.",
    )
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="Detector score at which a class counts."
    )
    labels: list[NudeNetLabel] = Field(
        default_factory=lambda: list(DEFAULT_NSFW_LABELS),
        description="NudeNet classes that make a frame NSFW.",
    )
    fast_frames: int = Field(
        default=7, ge=2, description="Evenly spaced frames `fast` checks (plus the middle one)."
    )
    threads: int = Field(default=1, ge=1, description="Detector threads per worker.")


class QuotaSettings(BaseModel):
    """What one key may use; `openimagine keys limits` overrides them per key. 0: no limit."""

    max_queued_per_key: int = Field(
        default=1000, ge=0, description="Tasks one key may have waiting in the queue."
    )
    max_running_per_key: int = Field(
        default=0, ge=0, description="Tasks of one key that workers run at once."
    )
    requests_per_minute: int = Field(
        default=6000,
        ge=0,
        description="Requests (and WebSocket messages) of one key, per API process, in any 60 s.",
    )
    daily_budget_usd: float = Field(
        default=0.0, ge=0, description="Dollars of tasks one key may submit per UTC day."
    )
    max_stored_bytes_per_key: int = Field(
        default=10 * 1024**3,
        ge=0,
        description="Bytes of inputs (uploads and fetched media) one key may keep stored; "
        "the same for every key (`keys limits` does not override it).",
    )


class MetricsSettings(BaseModel):
    """Prometheus metrics: `GET /metrics` on the API port (README, "Metrics and logs")."""

    enabled: bool = Field(default=True, description="Serve GET /metrics on the API port.")
    token: str | None = Field(
        default=None,
        description="When set, /metrics (the API's and a worker's metrics port) answers only "
        "requests with `Authorization: Bearer <token>`. Unset: open, as Prometheus expects.",
    )


class LogSettings(BaseModel):
    """What each process writes to stderr."""

    format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line, "
        "with `task_uuid` on the lines about a task.",
    )


class Settings(BaseSettings):
    """All configuration. Environment variables use the prefix OPENIMAGINE_ and `__` for groups."""

    model_config = SettingsConfigDict(
        env_prefix="OPENIMAGINE_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("./data")
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    workers: WorkerSettings = WorkerSettings()
    model: ModelSettings = ModelSettings()
    delivery: DeliverySettings = DeliverySettings()
    blobs: BlobSettings = BlobSettings()
    inputs: InputSettings = InputSettings()
    safety: SafetySettings = SafetySettings()
    quotas: QuotaSettings = QuotaSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs that outbound requests (media fetches, webhooks) may "
        "reach even though they are private, loopback or link-local (e.g. 10.0.0.0/8).",
    )
    api_keys: list[str] = Field(
        default_factory=list, description="Keys accepted besides stored ones."
    )

    def store_url(self) -> str:
        """The SQLAlchemy URL of the store."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.data_dir / 'openimagine.db').resolve()}"

    def public_url(self) -> str:
        """Base URL of this server as clients reach it."""
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard is not a reachable host
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    def metrics_dir(self, role: str) -> Path:
        """Where the processes of one `serve` or `worker` command (`role`, e.g. `serve-8765`)
        share their Prometheus values (multiprocess mode)."""
        return self.data_dir / "metrics" / role

    def blob_dir(self) -> Path:
        """Local blob store root (with S3 blobs: where scratch files go)."""
        url = self.blobs.url
        if url and not self.blobs.is_s3():
            return Path(url.removeprefix("file://"))
        return self.data_dir / "blobs"

    def models_dir(self) -> Path:
        """Where built or downloaded weights live."""
        return self.data_dir / "models"

    def signing_secret(self) -> bytes:
        """The URL-signing secret, created once (0600) in the data dir when not configured."""
        if self.delivery.signing_secret:
            return self.delivery.signing_secret.encode()
        return self._data_secret("secret", secrets.token_urlsafe(32)).encode()

    def webhook_secret(self) -> str:
        """The Standard Webhooks signing secret (`whsec_` + base64), shared with receivers."""
        if self.delivery.webhook_secret:
            return self.delivery.webhook_secret
        fresh = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return self._data_secret("webhook-secret", fresh)

    def _data_secret(self, name: str, fresh: str) -> str:
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}-{secrets.token_hex(8)}")
            tmp.write_text(fresh)
            tmp.chmod(0o600)
            # os.link fails if another process won the race; then both read the winner's secret.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        return path.read_text().strip()

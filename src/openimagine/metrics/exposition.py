"""What a scrape gets: the text exposition of this process's metrics (or, in multiprocess
mode, of every process of its command), the store's gauges, and an optional bearer token.

`openimagine serve` serves it at `GET /metrics` on the API port (`api/metrics.py`);
`openimagine worker` serves it on `OPENIMAGINE_WORKERS__METRICS_PORT` with `MetricsServer`.
"""

from __future__ import annotations

import hmac
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from openimagine.__about__ import __version__
from openimagine.config import Settings
from openimagine.metrics.instruments import instruments, use_multiprocess_dir
from openimagine.metrics.store import StoreGauges

CONTENT_TYPE = CONTENT_TYPE_LATEST


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class _Collected:
    """Metric families from several sources, as `generate_latest` takes them."""

    def __init__(self, sources: Sequence[Iterable[Metric]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source


class Exposition:
    """This process's metrics as a scrape sees them.

    Args:
        token: The bearer token scrapes must present (None: none).
        multiprocess_dir: The directory of multiprocess mode (`use_multiprocess_dir`), or
            None to show this process's instruments alone.
        store: The store's gauges (the API's scrapes), or None.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        multiprocess_dir: Path | None = None,
        store: StoreGauges | None = None,
    ) -> None:
        self._token = token
        self._dir = multiprocess_dir
        self._store = store

    def authorized(self, authorization: str | None) -> bool:
        """Whether a request with this `Authorization` header value may scrape."""
        if self._token is None:
            return True
        given = bearer(authorization)
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    async def render(self) -> bytes:
        """The exposition, with the store's gauges read now (files are read in a thread)."""
        extra = await self._store.read() if self._store is not None else []
        return await anyio.to_thread.run_sync(self.render_now, extra)

    def render_now(self, extra: Sequence[Metric] = ()) -> bytes:
        """The exposition of the instruments and `extra` (blocking: reads the value files)."""
        if self._dir is not None:
            files = MultiProcessCollector(None, path=str(self._dir))  # type: ignore[no-untyped-call]
            recorded: Iterable[Metric] = files.collect()  # type: ignore[no-untyped-call]
        else:
            recorded = instruments().registry.collect()
        info = GaugeMetricFamily(
            "openimagine_build_info", "The running version (always 1).", labels=["version"]
        )
        info.add_metric([__version__], 1)
        return generate_latest(_Collected([recorded, extra, [info]]))

    def close(self) -> None:
        """Release the store connection and delete the multiprocess files (call once the
        processes that write them have stopped): a command leaves no directory behind."""
        if self._store is not None:
            self._store.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def serve_exposition(settings: Settings) -> Exposition | None:
    """`openimagine serve`: multiprocess mode for the API and the workers it spawns, and the
    store's gauges. Call before the workers start and before anything is recorded. None
    when metrics are off (`OPENIMAGINE_METRICS__ENABLED=false`)."""
    if not settings.metrics.enabled:
        return None
    path = use_multiprocess_dir(settings.metrics_dir(f"serve-{settings.server.port}"))
    return Exposition(
        token=settings.metrics.token,
        multiprocess_dir=path,
        store=StoreGauges(settings.store_url()),
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exposition: Exposition


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if urlsplit(self.path).path not in ("/", "/metrics"):
            self._answer(404, b"Not found: scrape /metrics\n", "text/plain; charset=utf-8")
        elif not self.server.exposition.authorized(self.headers.get("Authorization")):
            self._answer(401, b"Unauthorized\n", "text/plain; charset=utf-8", bearer=True)
        else:
            self._answer(200, self.server.exposition.render_now(), CONTENT_TYPE)

    def _answer(self, status: int, body: bytes, content_type: str, *, bearer: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if bearer:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged."""


class MetricsServer:
    """The metrics HTTP port of `openimagine worker`: `GET /metrics` in a daemon thread."""

    def __init__(self, host: str, port: int, exposition: Exposition) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.exposition = exposition
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (after the workers stopped: their files are deleted)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.exposition.close()


def worker_metrics_server(settings: Settings) -> MetricsServer | None:
    """`openimagine worker`: multiprocess mode for the workers it spawns, served on
    `workers.metrics_port` (None when it is 0). Call before the workers start."""
    port = settings.workers.metrics_port
    if not port:
        return None
    path = use_multiprocess_dir(settings.metrics_dir(f"worker-{port}"))
    exposition = Exposition(token=settings.metrics.token, multiprocess_dir=path)
    return MetricsServer(settings.workers.metrics_host, port, exposition).start()

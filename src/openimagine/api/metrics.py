"""`GET /metrics`: Prometheus' text exposition of the API and its workers (see
`metrics.exposition`), open unless `OPENIMAGINE_METRICS__TOKEN` is set, absent (404) when
metrics are off."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from openimagine.metrics.exposition import CONTENT_TYPE, Exposition

router = APIRouter(tags=["health"], include_in_schema=False)


def exposition(request: Request) -> Exposition | None:
    """The app's exposition (`app.state.metrics`), None when metrics are off."""
    found: Exposition | None = getattr(request.app.state, "metrics", None)
    return found


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """The metrics; 401 without the configured bearer token, 404 when metrics are off."""
    source = exposition(request)
    if source is None:
        return PlainTextResponse("Metrics are off.\n", status_code=404)
    if not source.authorized(request.headers.get("authorization")):
        return PlainTextResponse(
            "Unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    return Response(await source.render(), media_type=CONTENT_TYPE)

"""The playground: one HTML page at `GET /` that drives `POST /v1` from the browser.

No build step: `static/index.html`, `static/playground.js` and `static/playground.css` ship in
the package. The page gets the model card embedded as JSON, so its sizes, durations, formats
and ranges are the ones the server validates against.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from openimagine.__about__ import __version__
from openimagine.api.deps import Services
from openimagine.models.card import ModelCard

router = APIRouter(tags=["playground"])

STATIC_PATH = "/static"
_STATIC_DIR = Path(__file__).parent / "static"
# The page loads its own script and style only; result videos may come from the public URL
# of the server (behind a proxy), so media may be any http(s) origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' http: https: blob: data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def static_files() -> StaticFiles:
    """The playground's script and style, to be mounted at `STATIC_PATH`."""
    return StaticFiles(directory=_STATIC_DIR)


@functools.cache
def _template() -> str:
    return (_STATIC_DIR / "index.html").read_text(encoding="utf-8")


def card_config(card: ModelCard) -> dict[str, Any]:
    """What the page needs from the model card to build its form."""
    return {
        "model": card.id,
        "name": card.name,
        "sizes": [
            {"width": s.width, "height": s.height, "tier": s.tier, "aspectRatio": s.aspect}
            for s in card.sizes
        ],
        "resolutions": list(card.resolutions),
        "defaultResolution": card.default_resolution,
        "duration": {"min": card.duration.min, "max": card.duration.max},
        "videoDuration": {"min": card.video_duration.min, "max": card.video_duration.max},
        "defaultDuration": card.duration.default,
        "outputFormats": list(card.output_formats),
        "defaultOutputFormat": card.default_output_format,
        "outputQuality": {
            "min": card.output_quality.min,
            "max": card.output_quality.max,
            "default": card.output_quality.default,
        },
        "numberResults": {"min": card.number_results.min, "max": card.number_results.max},
    }


def _script_json(value: Any) -> str:
    """JSON safe to inline in a `<script type="application/json">` element."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get(
    "/",
    summary="Playground: generate a clip from the browser",
    response_class=HTMLResponse,
)
async def playground(deps: Services) -> HTMLResponse:
    """An HTML form over `POST /v1`: prompt, mode, input media, size, duration, format,
    quality, number of results and seed; it polls `getResponse` and plays the results."""
    card = deps.card
    page = (
        _template()
        .replace("{{CARD_JSON}}", _script_json(card_config(card)))
        .replace("{{VERSION}}", __version__)
        .replace("{{STATIC}}", STATIC_PATH)
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )

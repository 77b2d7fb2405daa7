"""Liveness, readiness, and what model is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from openimagine.__about__ import __version__
from openimagine.api.deps import Services
from openimagine.domain.records import WorkerState
from openimagine.store.protocols import WorkerRegistry

router = APIRouter(tags=["health"])

_FRESH_S = 30.0
RANDOM_WEIGHTS_NOTICE = (
    "RANDOM WEIGHTS: the offline tiny LTX-2 model has random weights, so its video and audio "
    "are noise. Set OPENIMAGINE_MODEL__CHECKPOINT to a real LTX-2 checkpoint."
)


async def _workers(registry: WorkerRegistry) -> list[dict[str, Any]]:
    return [
        {
            "id": w.id,
            "state": w.state.value,
            "weights": w.weights,
            "randomWeights": w.random_weights,
            "taskUUID": w.task_uuid,  # the task it runs now; null when idle
            # What it claims: tasks on these models (empty: any), no bigger than this
            # (width × height × frames; 0: any).
            "models": list(w.capability.models),
            "maxPixelFrames": w.capability.max_pixel_frames,
        }
        for w in await registry.all(fresh_within_s=_FRESH_S)
        if w.state is not WorkerState.STOPPED
    ]


@router.get("/health", summary="Liveness, and the model being served")
async def health(deps: Services) -> dict[str, Any]:
    """Always 200 while the API process runs; reports workers and whether weights are random."""
    workers = await _workers(deps.workers)
    random_weights = deps.random_weights or any(w["randomWeights"] for w in workers)
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "model": deps.card.id,
        "weights": deps.weights,
        "randomWeights": random_weights,
        "workers": workers,
    }
    if random_weights:
        body["notice"] = RANDOM_WEIGHTS_NOTICE
    return body


@router.get("/ready", summary="Ready when at least one worker has its model loaded")
async def ready(deps: Services) -> JSONResponse:
    """200 with ≥1 ready worker, else 503."""
    ready_state = WorkerState.READY.value
    workers = [w for w in await _workers(deps.workers) if w["state"] == ready_state]
    status = 200 if workers else 503
    return JSONResponse({"ready": bool(workers), "workers": len(workers)}, status_code=status)


@router.get("/v1/models", summary="The model cards this server serves")
async def models(deps: Services) -> dict[str, Any]:
    """The model card as data: sizes, durations, formats, prices."""
    card = deps.card
    return {
        "data": [
            {
                "id": card.id,
                "name": card.name,
                "capabilities": list(card.capabilities),
                "sizes": [
                    {"width": s.width, "height": s.height, "tier": s.tier, "aspectRatio": s.aspect}
                    for s in card.sizes
                ],
                "resolutions": list(card.resolutions),
                "duration": {
                    "min": card.duration.min,
                    "max": card.duration.max,
                    "default": card.duration.default,
                },
                "fps": card.fps,
                "outputFormats": list(card.output_formats),
                "pricing": {
                    "perSecond": {k: float(v) for k, v in card.prices.per_second.items()},
                    "imageInput": float(card.prices.image_input),
                    "videoInputPerSecond": float(card.prices.video_input_per_second),
                },
                "weights": deps.weights,
                "randomWeights": deps.random_weights,
            }
        ]
    }

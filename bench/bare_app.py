"""The yardstick for the API benchmarks: a bare FastAPI `POST /v1` that parses the task
array, checks the bearer key, and acknowledges each task (no validation, no store)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

KEY = "bench-key"


def create_bare_app() -> FastAPI:
    """The bare endpoint."""
    app = FastAPI()

    @app.post("/v1")
    async def v1(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"errors": [{"code": "invalidApiKey"}]}, status_code=401)
        tasks: list[dict[str, Any]] = json.loads(await request.body())
        data = [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]} for t in tasks]
        return JSONResponse({"data": data})

    return app


app = create_bare_app()

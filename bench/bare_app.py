"""The yardstick for the API benchmarks: a bare FastAPI `POST /v1` that parses the task
array, checks the bearer key, and acknowledges each task (no validation, no store), and the
same over a `WS /v1` that authenticates with its first message."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
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

    @app.websocket("/v1")
    async def ws(websocket: WebSocket) -> None:
        # The WebSocket yardstick: authenticate with the first message, then acknowledge
        # every task of every message.
        await websocket.accept()
        try:
            while True:
                tasks: list[dict[str, Any]] = json.loads(await websocket.receive_text())
                data = []
                for t in tasks:
                    if t.get("taskType") == "authentication":
                        if t.get("apiKey") != KEY:
                            await websocket.send_json({"errors": [{"code": "invalidApiKey"}]})
                            continue
                        data.append({"taskType": "authentication", "connectionSessionUUID": "x"})
                    else:
                        data.append({"taskType": t["taskType"], "taskUUID": t["taskUUID"]})
                await websocket.send_json({"data": data})
        except WebSocketDisconnect:
            return

    return app


app = create_bare_app()

"""Drive the server's gRPC door with xAI's Python SDK (`xai-sdk`), unchanged.

Run in the SDK's own environment: `python xai_grpc.py SCENARIO`, with OI_GRPC_HOST
(`127.0.0.1:PORT`), OI_KEY and, per scenario, OI_ARGS (JSON keyword arguments of
`video.generate`), OI_IMAGE (a PNG file) or OI_VIDEO (an MP4 file, for an edit or an
extension). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from xai_sdk import AsyncClient, Client
from xai_sdk.proto import deferred_pb2

MODEL = "grok-imagine-video"
WAIT = {"timeout": datetime.timedelta(seconds=240), "interval": datetime.timedelta(seconds=0.2)}


def client(key: str | None = None) -> Client:
    return Client(
        api_key=key or os.environ["OI_KEY"],
        api_host=os.environ["OI_GRPC_HOST"],
        use_insecure_channel=True,
    )


def described(response: Any) -> dict[str, Any]:
    return {
        "url": response.url,
        "duration": response.duration,
        "model": response.model,
        "respect_moderation": response.respect_moderation,
        "cost_usd": response.cost_usd,
        "ticks": response.usage.cost_in_usd_ticks,
    }


def generate() -> dict[str, Any]:
    args = json.loads(os.environ.get("OI_ARGS", "{}"))
    return described(client().video.generate(model=MODEL, **args, **WAIT))


def data_url(path: str, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def image_to_video() -> dict[str, Any]:
    url = data_url(os.environ["OI_IMAGE"], "image/png")
    response = client().video.generate(
        "the scene comes alive", MODEL, image_url=url, duration=1, **WAIT
    )
    return described(response)


def edit() -> dict[str, Any]:
    url = data_url(os.environ["OI_VIDEO"], "video/mp4")
    return described(client().video.generate("the harbour at night", MODEL, video_url=url, **WAIT))


def extend() -> dict[str, Any]:
    url = data_url(os.environ["OI_VIDEO"], "video/mp4")
    return described(client().video.extend("and then", MODEL, video_url=url, duration=2, **WAIT))


def asynchronous() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        aclient = AsyncClient(
            api_key=os.environ["OI_KEY"],
            api_host=os.environ["OI_GRPC_HOST"],
            use_insecure_channel=True,
        )
        response = await aclient.video.generate(
            "a kite", MODEL, duration=1, aspect_ratio="9:16", **WAIT
        )
        return described(response)

    return asyncio.run(main())


def status(call: Any) -> list[str]:
    """The gRPC status code and details a call fails with."""
    try:
        call()
    except grpc.RpcError as err:
        return [err.code().name, err.details()]
    raise AssertionError("the call succeeded")


def errors() -> dict[str, list[str]]:
    video = client().video
    return {
        "bad_key": status(lambda: client("oi_not_a_key").video.start("x", MODEL, duration=1)),
        "bad_duration": status(lambda: video.start("x", MODEL, duration=60)),
        "bad_resolution": status(lambda: video.start("x", MODEL, resolution="1080p")),
        "unknown_model": status(lambda: video.start("x", "grok-imagine-image")),
        "unknown_request": status(lambda: video.get("00000000-0000-4000-8000-000000000000")),
        "extend_too_long": status(
            lambda: video.extend(
                "and then", MODEL, video_url="https://example.com/a.mp4", duration=11
            )
        ),
    }


def tls() -> dict[str, Any]:
    """Over TLS, as against xAI (the server's certificate trusted through
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH): a request is queued and reads as pending."""
    video = Client(api_key=os.environ["OI_KEY"], api_host=os.environ["OI_GRPC_HOST"]).video
    started = video.start("a lighthouse", MODEL, duration=1)
    state = video.get(started.request_id)
    status = deferred_pb2.DeferredStatus.Name(state.status)
    return {"request_id": started.request_id, "status": status}


SCENARIOS = {
    "generate": generate,
    "image_to_video": image_to_video,
    "edit": edit,
    "extend": extend,
    "async": asynchronous,
    "errors": errors,
    "tls": tls,
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))

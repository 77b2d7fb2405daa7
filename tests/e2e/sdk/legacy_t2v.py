"""Drive a T2V task with the legacy `runware` SDK (0.5.x, WebSocket). Prints JSON results."""

from __future__ import annotations

import asyncio
import json
import os

from runware import IVideoInference, Runware


async def main() -> None:
    rw = Runware(api_key=os.environ["OI_KEY"], url=os.environ["OI_WS_URL"])
    await rw.connect()
    request = IVideoInference(
        model="xai:grok-imagine@video",
        positivePrompt="a paper train crossing a trestle",
        width=int(os.environ.get("OI_WIDTH", "480")),
        height=int(os.environ.get("OI_HEIGHT", "480")),
        duration=1,
        includeCost=True,
        numberResults=int(os.environ.get("OI_N", "1")),
    )
    ack = await rw.videoInference(requestVideo=request)
    videos = await rw.getResponse(taskUUID=ack.taskUUID, numberResults=request.numberResults)
    print(
        json.dumps(
            {
                "ack": type(ack).__name__,
                "taskUUID": ack.taskUUID,
                "videos": [
                    {
                        "videoURL": v.videoURL,
                        "videoUUID": v.videoUUID,
                        "cost": v.cost,
                        "seed": v.seed,
                        "status": v.status,
                        "taskUUID": v.taskUUID,
                    }
                    for v in videos
                ],
            }
        )
    )
    await rw.disconnect()


asyncio.run(main())

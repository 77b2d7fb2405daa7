"""Upload an image with the legacy `runware` SDK, then animate it (I2V). Prints JSON results."""

from __future__ import annotations

import asyncio
import json
import os

from runware import IVideoInference, IVideoInputs, Runware


async def main() -> None:
    rw = Runware(api_key=os.environ["OI_KEY"], url=os.environ["OI_WS_URL"])
    await rw.connect()
    uploaded = await rw.uploadImage(os.environ["OI_IMAGE"])
    assert uploaded is not None
    request = IVideoInference(
        model="xai:grok-imagine@video",
        positivePrompt="the lighthouse beam sweeps the fog",
        duration=1,
        resolution=os.environ.get("OI_RESOLUTION", "480p"),
        includeCost=True,
        inputs=IVideoInputs(frameImages=[uploaded.imageUUID]),
    )
    ack = await rw.videoInference(requestVideo=request)
    videos = await rw.getResponse(taskUUID=ack.taskUUID, numberResults=1)
    print(
        json.dumps(
            {
                "imageUUID": uploaded.imageUUID,
                "videos": [
                    {"videoURL": v.videoURL, "cost": v.cost, "status": v.status} for v in videos
                ],
            }
        )
    )
    await rw.disconnect()


asyncio.run(main())

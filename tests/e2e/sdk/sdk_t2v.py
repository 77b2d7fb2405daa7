"""Drive a T2V task with `runware-sdk` (1.x) over the transport named in OI_TRANSPORT."""

from __future__ import annotations

import asyncio
import json
import os

from runware import Runware


async def main() -> None:
    progress: list[int] = []
    async with Runware(
        api_key=os.environ["OI_KEY"],
        transport=os.environ["OI_TRANSPORT"],
        ws_base_url=os.environ["OI_WS_URL"],
        http_base_url=os.environ["OI_HTTP_URL"],
    ) as client:
        results = await client.run(
            {
                "taskType": "videoInference",
                "model": "xai:grok-imagine@video",
                "positivePrompt": "a lighthouse in a storm",
                "width": 848,
                "height": 480,
                "duration": 1,
                "includeCost": True,
                "numberResults": 2,
            }
        )
    print(json.dumps({"results": results, "progress": progress}))


asyncio.run(main())

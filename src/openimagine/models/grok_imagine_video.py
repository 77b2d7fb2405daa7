"""`xai:grok-imagine@video`, transcribed from its model page (shared/spec/grok-imagine-video.md)."""

from __future__ import annotations

from decimal import Decimal

from openimagine.models.card import ModelCard, PriceList, Range, Size

_SIZES = (
    Size(480, 480, "480p", "1:1"),
    Size(848, 480, "480p", "16:9"),
    Size(480, 848, "480p", "9:16"),
    Size(640, 480, "480p", "4:3"),
    Size(480, 640, "480p", "3:4"),
    Size(720, 480, "480p", "3:2"),
    Size(480, 720, "480p", "2:3"),
    Size(720, 720, "720p", "1:1"),
    Size(1280, 720, "720p", "16:9"),
    Size(720, 1280, "720p", "9:16"),
    Size(960, 720, "720p", "4:3"),
    Size(720, 960, "720p", "3:4"),
    Size(1088, 720, "720p", "3:2"),
    Size(720, 1088, "720p", "2:3"),
)

GROK_IMAGINE_VIDEO = ModelCard(
    id="xai:grok-imagine@video",
    name="Grok Imagine Video",
    capabilities=("textToVideo", "imageToVideo", "videoToVideo"),
    sizes=_SIZES,
    resolutions=("480p", "720p"),
    default_resolution="480p",
    duration=Range(1, 15, 6),
    video_duration=Range(2, 10, None),
    fps=24,
    output_types=("URL",),
    output_formats=("MP4", "WEBM", "MOV"),
    default_output_format="MP4",
    output_quality=Range(20, 99, 95),
    number_results=Range(1, 4, 1),
    min_ttl_s=60,
    delivery_methods=("async",),
    safety_modes=("none", "fast", "full"),
    frame_positions=("first", 0),
    prices=PriceList(
        per_second={"480p": Decimal("0.05"), "720p": Decimal("0.07")},
        image_input=Decimal("0.002"),
        video_input_per_second=Decimal("0.01"),
    ),
    # Not on the page: a server limit so a prompt cannot be arbitrarily large.
    prompt_max_chars=20000,
    task_fields=frozenset(
        {
            "taskType",
            "taskUUID",
            "model",
            "positivePrompt",
            "width",
            "height",
            "resolution",
            "duration",
            "inputs",
            "seed",
            "outputType",
            "outputFormat",
            "outputQuality",
            "webhookURL",
            "deliveryMethod",
            "uploadEndpoint",
            "safety",
            "ttl",
            "includeCost",
            "numberResults",
        }
    ),
    input_fields=frozenset(
        {"frameImages", "referenceImages", "video", "referenceVideos", "extendVideo"}
    ),
    # Not on the page (xAI's API has it): a clip continued by 2-10 s, its audio with it, from
    # an input of 2-30 s; the output is the input followed by the continuation.
    extension=Range(2, 10, 6),
    extension_input=Range(2, 30, None),
)

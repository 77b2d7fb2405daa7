"""Every rule of the `xai:grok-imagine@video` model page, one case each, as a user sees it.

The source of truth is shared/spec/grok-imagine-video.md (the "page"). Expected values below are
copied from the page, never from the model card, so a mistranscribed card fails here. Each
refusal asserts the `code` and `parameter` that end up in the Runware error item.
"""

from __future__ import annotations

from typing import Any

import pytest

from openimagine.config import DeliverySettings
from openimagine.domain.requests import Mode, VideoRequest
from openimagine.errors import InvalidInput
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.models.rules import check_task_uuid
from openimagine.runware.errors import error_item, http_status
from openimagine.runware.validation import validate_video_task

CARD = GROK_IMAGINE_VIDEO
MODEL = "xai:grok-imagine@video"
TASK_UUID = "6378aa49-9f31-414a-8e00-3076dea79124"
# Server-side TTL bounds (the page only sets the minimum); chosen apart from any default.
LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=7 * 24 * 3600)
DROP: Any = object()  # marks a field to remove from a base task

IMAGE = "aac49721-1964-481a-ae78-8a4e29b91402"
VIDEO = "https://assets.runware.ai/assets/inputs/931713e7-94a4-46ff-b6a2-a450a9ab9e53.mp4"

# The page's "supported dimension combinations" table, verbatim.
PAGE_SIZES = [
    ("480p", "1:1", 480, 480),
    ("480p", "16:9", 848, 480),
    ("480p", "9:16", 480, 848),
    ("480p", "4:3", 640, 480),
    ("480p", "3:4", 480, 640),
    ("480p", "3:2", 720, 480),
    ("480p", "2:3", 480, 720),
    ("720p", "1:1", 720, 720),
    ("720p", "16:9", 1280, 720),
    ("720p", "9:16", 720, 1280),
    ("720p", "4:3", 960, 720),
    ("720p", "3:4", 720, 960),
    ("720p", "3:2", 1088, 720),
    ("720p", "2:3", 720, 1088),
]


def _with(task: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(task)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def t2v(**changes: Any) -> dict[str, Any]:
    """A valid text-to-video task (smallest size) with `changes` applied."""
    base = {
        "taskType": "videoInference",
        "taskUUID": TASK_UUID,
        "model": MODEL,
        "positivePrompt": "a lighthouse in a storm",
        "width": 480,
        "height": 480,
    }
    return _with(base, changes)


def i2v(**changes: Any) -> dict[str, Any]:
    """A valid image-to-video task: one first-frame image, no size."""
    return t2v(**{"width": DROP, "height": DROP, "inputs": {"frameImages": [IMAGE]}, **changes})


def v2v(**changes: Any) -> dict[str, Any]:
    """A valid video-to-video task: a source video, no size."""
    return t2v(**{"width": DROP, "height": DROP, "inputs": {"video": VIDEO}, **changes})


def accept(task: dict[str, Any]) -> VideoRequest:
    return validate_video_task(task, CARD, LIMITS)


def refuse(task: dict[str, Any], code: str, parameter: str) -> InvalidInput:
    """Assert the task is refused with this code/parameter; return the error for more checks."""
    with pytest.raises(InvalidInput) as info:
        validate_video_task(task, CARD, LIMITS)
    err = info.value
    assert (err.code, err.parameter) == (code, parameter), err.message
    assert http_status(err) == 400
    assert err.message
    return err


# -- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("tier", "aspect", "width", "height"), PAGE_SIZES)
def test_each_size_of_the_page_is_accepted_for_text_to_video(
    tier: str, aspect: str, width: int, height: int
):
    req = accept(t2v(width=width, height=height))
    assert (req.mode, req.width, req.height) == (Mode.T2V, width, height)
    # The tier decides the price, so the card must agree with the page's label too.
    size = CARD.size(width, height)
    assert size is not None and (size.tier, size.aspect) == (tier, aspect)


def test_the_card_has_exactly_the_fourteen_sizes_of_the_page():
    assert sorted((s.width, s.height) for s in CARD.sizes) == sorted(
        (w, h) for _, _, w, h in PAGE_SIZES
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (1920, 1080),  # a common size the model does not make
        (1280, 480),  # each side is valid alone, the pair is not
        (848, 848),
        (1080, 720),  # near 1088x720
        (481, 480),
        (256, 256),
        (0, 0),
        (-480, -480),
    ],
)
def test_other_sizes_are_refused_with_the_allowed_list(width: int, height: int):
    err = refuse(t2v(width=width, height=height), "unsupportedDimensions", "width")
    assert f"{width}x{height}" in err.message
    assert err.details["allowedValues"] == [f"{w}x{h}" for _, _, w, h in PAGE_SIZES]


@pytest.mark.parametrize(
    ("changes", "code", "parameter"),
    [
        ({"height": DROP}, "missingHeight", "height"),
        ({"width": DROP}, "missingWidth", "width"),
    ],
)
def test_width_and_height_must_be_used_together(changes: dict[str, Any], code: str, parameter: str):
    err = refuse(t2v(**changes), code, parameter)
    assert "together" in err.message


@pytest.mark.parametrize("value", ["480", 480.5, True, [480], {"px": 480}])
@pytest.mark.parametrize("field", ["width", "height"])
def test_wrong_typed_width_or_height_is_refused(field: str, value: Any):
    refuse(t2v(**{field: value}), f"invalid{field.capitalize()}", field)


# -- exactly one of frameImages / video / width+height -------------------------------------


def test_a_task_without_size_frame_image_or_video_is_refused():
    refuse(t2v(width=DROP, height=DROP), "missingWidth", "width")


def test_reference_images_alone_do_not_replace_a_size():
    refuse(
        t2v(width=DROP, height=DROP, inputs={"referenceImages": [IMAGE]}), "missingWidth", "width"
    )


def test_null_width_and_height_are_not_a_size():
    refuse(t2v(width=None, height=None), "missingWidth", "width")


@pytest.mark.parametrize(
    ("task", "parameter"),
    [
        (i2v(width=480, height=480), "width"),
        (v2v(width=480, height=480), "width"),
        (
            t2v(width=DROP, height=DROP, inputs={"frameImages": [IMAGE], "video": VIDEO}),
            "inputs.video",
        ),
    ],
    ids=["frameImages+size", "video+size", "frameImages+video"],
)
def test_only_one_of_frame_images_video_or_size(task: dict[str, Any], parameter: str):
    refuse(task, "incompatibleParameters", parameter)


@pytest.mark.parametrize(
    ("task", "mode"),
    [(t2v(), Mode.T2V), (i2v(), Mode.I2V), (v2v(), Mode.V2V)],
    ids=["size", "frameImages", "video"],
)
def test_each_single_choice_picks_its_mode(task: dict[str, Any], mode: Mode):
    assert accept(task).mode is mode


# -- inputs compatibility --------------------------------------------------------------------


def test_frame_images_cannot_be_used_with_reference_images():
    task = i2v(inputs={"frameImages": [IMAGE], "referenceImages": [IMAGE]})
    refuse(task, "incompatibleParameters", "inputs.referenceImages")


def test_reference_images_guide_text_to_video():
    req = accept(t2v(inputs={"referenceImages": [IMAGE, " https://example.com/r.png "]}))
    assert req.mode is Mode.T2V
    assert [r.source for r in req.reference_images] == [IMAGE, "https://example.com/r.png"]


def test_reference_images_cannot_be_used_with_a_source_video():
    task = v2v(inputs={"video": VIDEO, "referenceImages": [IMAGE]})
    refuse(task, "incompatibleParameters", "inputs.referenceImages")


@pytest.mark.parametrize(
    ("inputs", "code", "parameter"),
    [
        ({"referenceImages": IMAGE}, "invalidReferenceImages", "inputs.referenceImages"),
        ({"referenceImages": [5]}, "invalidReferenceImages", "inputs.referenceImages[0]"),
        ({"referenceImages": [IMAGE, ""]}, "invalidReferenceImages", "inputs.referenceImages[1]"),
        ({"video": 5}, "invalidVideo", "inputs.video"),
        ({"video": "  "}, "invalidVideo", "inputs.video"),
        ({"mask": IMAGE}, "unsupportedParameter", "inputs.mask"),
        ({"audio": "x"}, "unsupportedParameter", "inputs.audio"),
    ],
)
def test_malformed_inputs_are_refused(inputs: dict[str, Any], code: str, parameter: str):
    refuse(t2v(inputs=inputs), code, parameter)


@pytest.mark.parametrize("inputs", [[IMAGE], "inputs", 5])
def test_inputs_must_be_an_object(inputs: Any):
    refuse(t2v(inputs=inputs), "invalidInputs", "inputs")


def test_the_page_video_to_video_example_uses_reference_videos_as_the_source():
    # The page's V2V example sends inputs.referenceVideos (one clip), not inputs.video.
    req = accept(t2v(width=DROP, height=DROP, inputs={"referenceVideos": [VIDEO]}))
    assert req.video is not None and req.video.parameter == "inputs.video"
    assert (req.mode, req.video.source, req.duration_s) == (Mode.V2V, VIDEO, None)


@pytest.mark.parametrize(
    "inputs",
    [{"referenceVideos": [VIDEO, VIDEO]}, {"referenceVideos": [VIDEO], "video": VIDEO}],
    ids=["two-reference-videos", "video+referenceVideos"],
)
def test_only_one_source_video(inputs: dict[str, Any]):
    refuse(
        t2v(width=DROP, height=DROP, inputs=inputs),
        "invalidReferenceVideos",
        "inputs.referenceVideos",
    )


# -- frameImages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        IMAGE,
        "https://example.com/first.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        {"image": IMAGE, "frame": "first"},
        {"image": IMAGE, "frame": 0},
        {"image": IMAGE},  # frame omitted: one image is the first frame
    ],
    ids=["uuid", "url", "data-uri", "frame-first", "frame-0", "no-frame"],
)
def test_a_first_frame_image_in_either_format_is_accepted(item: Any):
    req = accept(i2v(inputs={"frameImages": [item]}))
    expected = item["image"] if isinstance(item, dict) else item
    assert req.frame_image is not None and req.frame_image.parameter == "inputs.frameImages"
    assert (req.mode, req.frame_image.source) == (Mode.I2V, expected)


@pytest.mark.parametrize("frame", ["last", 1, -1, 24, True, "middle", None])
def test_only_the_first_frame_is_supported(frame: Any):
    err = refuse(
        i2v(inputs={"frameImages": [{"image": IMAGE, "frame": frame}]}),
        "invalidFrame",
        "inputs.frameImages.frame",
    )
    assert err.details["allowedValues"] == ["first", 0]


def test_a_frame_object_needs_its_image():
    refuse(
        i2v(inputs={"frameImages": [{"frame": "first"}]}),
        "missingImage",
        "inputs.frameImages.image",
    )


def test_more_than_one_frame_image_is_refused():
    refuse(i2v(inputs={"frameImages": [IMAGE, IMAGE]}), "invalidFrameImages", "inputs.frameImages")


@pytest.mark.parametrize(
    ("frames", "code", "parameter"),
    [
        (IMAGE, "invalidFrameImages", "inputs.frameImages"),
        ([5], "invalidFrameImages", "inputs.frameImages"),
        ([""], "invalidFrameImages", "inputs.frameImages"),
        ([{"image": 5}], "invalidImage", "inputs.frameImages.image"),
        ([{"image": IMAGE, "weight": 1}], "unsupportedParameter", "inputs.frameImages.weight"),
    ],
)
def test_malformed_frame_images_are_refused(frames: Any, code: str, parameter: str):
    refuse(i2v(inputs={"frameImages": frames}), code, parameter)


def test_legacy_top_level_frame_images_are_read_as_inputs():
    # The legacy `runware` SDK sends frameImages at the top level with `inputImage`.
    task = t2v(width=DROP, height=DROP, frameImages=[{"inputImage": IMAGE, "frame": "first"}])
    req = accept(task)
    assert req.frame_image is not None
    assert (req.mode, req.frame_image.source) == (Mode.I2V, IMAGE)


def test_frame_images_at_the_top_level_and_in_inputs_are_refused():
    task = i2v(frameImages=[IMAGE])
    refuse(task, "invalidFrameImages", "frameImages")


# -- resolution preset -----------------------------------------------------------------------


@pytest.mark.parametrize("resolution", ["480p", "720p"])
def test_resolution_preset_with_a_frame_image(resolution: str):
    req = accept(i2v(resolution=resolution))
    assert (req.mode, req.resolution) == (Mode.I2V, resolution)


def test_resolution_defaults_to_480p():
    assert accept(i2v()).resolution == "480p"


@pytest.mark.parametrize("resolution", ["1080p", "480", "720P", "", 720])
def test_other_resolutions_are_refused(resolution: Any):
    refuse(i2v(resolution=resolution), "invalidResolution", "resolution")


def test_resolution_cannot_be_used_with_width_and_height():
    refuse(t2v(resolution="480p"), "incompatibleParameters", "resolution")


@pytest.mark.parametrize(
    "inputs",
    [None, {"frameImages": []}, {"referenceImages": [IMAGE]}],
    ids=["no-inputs", "empty-frameImages", "referenceImages-only"],
)
def test_resolution_requires_at_least_one_frame_image(inputs: dict[str, Any] | None):
    task = t2v(width=DROP, height=DROP, resolution="720p", inputs=inputs or DROP)
    refuse(task, "missingFrameImages", "inputs.frameImages")


def test_resolution_cannot_be_used_with_a_source_video():
    refuse(v2v(resolution="480p"), "incompatibleParameters", "resolution")


# -- duration --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [t2v, i2v], ids=["t2v", "i2v"])
@pytest.mark.parametrize("duration", [1, 6, 15])
def test_duration_range_without_a_source_video(make: Any, duration: int):
    assert accept(make(duration=duration)).duration_s == duration


@pytest.mark.parametrize("make", [t2v, i2v], ids=["t2v", "i2v"])
@pytest.mark.parametrize("duration", [0, 16, -1, 100])
def test_duration_outside_1_to_15_is_refused(make: Any, duration: int):
    err = refuse(make(duration=duration), "invalidDuration", "duration")
    assert (err.details["min"], err.details["max"]) == (1, 15)


@pytest.mark.parametrize("make", [t2v, i2v], ids=["t2v", "i2v"])
def test_duration_defaults_to_6(make: Any):
    assert accept(make()).duration_s == 6


def test_an_integral_float_duration_is_read_as_an_integer():
    # The generic video reference types duration as a float; 8.0 means 8 seconds.
    assert accept(t2v(duration=8.0)).duration_s == 8


@pytest.mark.parametrize("duration", [6.5, "6", True, [6]])
def test_a_non_integer_duration_is_refused(duration: Any):
    refuse(t2v(duration=duration), "invalidDuration", "duration")


@pytest.mark.parametrize("duration", [2, 5, 10])
def test_duration_with_a_source_video_is_2_to_10(duration: int):
    req = accept(v2v(duration=duration))
    assert (req.mode, req.duration_s) == (Mode.V2V, duration)


@pytest.mark.parametrize("duration", [1, 11, 15, 0])
def test_duration_with_a_source_video_outside_2_to_10_is_refused(duration: int):
    err = refuse(v2v(duration=duration), "unsupportedDuration", "duration")
    assert (err.details["min"], err.details["max"]) == (2, 10)


def test_without_duration_a_video_to_video_output_keeps_the_source_length():
    assert accept(v2v()).duration_s is None


# -- output and platform options ------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_number_results_1_to_4(number: int):
    assert accept(t2v(numberResults=number)).number_results == number


def test_number_results_defaults_to_1():
    assert accept(t2v()).number_results == 1


@pytest.mark.parametrize("number", [0, 5, -1, "2", 1.5])
def test_number_results_outside_1_to_4_or_not_an_integer_is_refused(number: Any):
    refuse(t2v(numberResults=number), "invalidNumberResults", "numberResults")


def test_output_type_url_is_accepted():
    accept(t2v(outputType="URL"))


@pytest.mark.parametrize("value", ["base64Data", "dataURI", "url", 1])
def test_output_type_other_than_url_is_refused(value: Any):
    refuse(t2v(outputType=value), "invalidOutputType", "outputType")


@pytest.mark.parametrize("fmt", ["MP4", "WEBM", "MOV"])
def test_output_formats_of_the_page(fmt: str):
    assert accept(t2v(outputFormat=fmt)).output_format == fmt


def test_output_format_defaults_to_mp4():
    assert accept(t2v()).output_format == "MP4"


@pytest.mark.parametrize("fmt", ["mp4", "GIF", "MKV", "", 4])
def test_other_output_formats_are_refused(fmt: Any):
    refuse(t2v(outputFormat=fmt), "invalidOutputFormat", "outputFormat")


@pytest.mark.parametrize("quality", [20, 60, 99])
def test_output_quality_20_to_99(quality: int):
    assert accept(t2v(outputQuality=quality)).output_quality == quality


def test_output_quality_defaults_to_95():
    assert accept(t2v()).output_quality == 95


@pytest.mark.parametrize("quality", [19, 100, 0, "95"])
def test_output_quality_outside_20_to_99_is_refused(quality: Any):
    refuse(t2v(outputQuality=quality), "invalidOutputQuality", "outputQuality")


def test_ttl_minimum_is_60_seconds():
    assert accept(t2v(ttl=60)).ttl_s == 60


def test_ttl_defaults_to_the_server_setting():
    assert accept(t2v()).ttl_s == LIMITS.default_ttl_s


@pytest.mark.parametrize("ttl", [59, 0, -60, "3600", 60.5])
def test_ttl_below_60_or_not_an_integer_is_refused(ttl: Any):
    refuse(t2v(ttl=ttl), "invalidTtl", "ttl")


def test_ttl_above_the_server_maximum_is_refused():
    # Not on the page (it has no maximum): the server bounds how long it keeps files.
    assert accept(t2v(ttl=LIMITS.max_ttl_s)).ttl_s == LIMITS.max_ttl_s
    refuse(t2v(ttl=LIMITS.max_ttl_s + 1), "invalidTtl", "ttl")


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (DROP, False)])
def test_include_cost(value: Any, expected: bool):
    assert accept(t2v(includeCost=value)).include_cost is expected


@pytest.mark.parametrize("value", ["true", 1, 0, "yes"])
def test_include_cost_must_be_a_boolean(value: Any):
    refuse(t2v(includeCost=value), "invalidIncludeCost", "includeCost")


@pytest.mark.parametrize(
    ("safety", "mode"),
    [
        (DROP, "none"),
        ({}, "none"),
        ({"checkContent": False}, "none"),
        ({"checkContent": True}, "fast"),  # "When enabled, defaults to fast mode."
        ({"mode": "full"}, "full"),
        ({"mode": "fast"}, "fast"),
        ({"checkContent": True, "mode": "full"}, "full"),
        ({"checkContent": True, "mode": "none"}, "none"),  # an explicit mode wins
    ],
)
def test_safety_mode(safety: Any, mode: str):
    assert accept(t2v(safety=safety)).safety_mode == mode


@pytest.mark.parametrize(
    ("safety", "code", "parameter"),
    [
        ("fast", "invalidSafety", "safety"),
        (True, "invalidSafety", "safety"),
        ({"mode": "strict"}, "invalidMode", "safety.mode"),
        ({"mode": "FULL"}, "invalidMode", "safety.mode"),
        ({"checkContent": "yes"}, "invalidCheckContent", "safety.checkContent"),
        ({"checkContent": 1}, "invalidCheckContent", "safety.checkContent"),
        ({"tolerance": 1}, "unsupportedParameter", "safety.tolerance"),
    ],
)
def test_malformed_safety_is_refused(safety: Any, code: str, parameter: str):
    refuse(t2v(safety=safety), code, parameter)


# The page's own uploadEndpoint examples, plus a plain webhook receiver.
GOOD_URLS = [
    "https://your-bucket.s3.amazonaws.com/generated/content.mp4?X-Amz-Signature=abc123"
    "&X-Amz-Expires=3600",
    "https://storage.googleapis.com/your-bucket/content.jpg?X-Goog-Signature=xyz789",
    "http://127.0.0.1:9000/hook?token=abc",
]
BAD_URLS = ["ftp://example.com/x", "/relative/path", "not a url", "https://", ""]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_webhook_url_and_upload_endpoint_accept_http_urls(url: str):
    req = accept(t2v(webhookURL=url, uploadEndpoint=url))
    assert (req.webhook_url, req.upload_endpoint) == (url, url)


@pytest.mark.parametrize("url", [*BAD_URLS, 5])
@pytest.mark.parametrize("field", ["webhookURL", "uploadEndpoint"])
def test_webhook_url_and_upload_endpoint_must_be_urls(field: str, url: Any):
    refuse(t2v(**{field: url}), f"invalid{field[0].upper()}{field[1:]}", field)


def test_delivery_method_async_is_accepted():
    accept(t2v(deliveryMethod="async"))


@pytest.mark.parametrize("method", ["sync", "ASYNC", "webhook", 1])
def test_delivery_method_other_than_async_is_refused(method: Any):
    err = refuse(t2v(deliveryMethod=method), "invalidDeliveryMethod", "deliveryMethod")
    if isinstance(method, str):
        assert err.details["allowedValues"] == ["async"]


@pytest.mark.parametrize("seed", [1, 42, 2**63 - 1])
def test_seed_is_kept(seed: int):
    assert accept(t2v(seed=seed)).seed == seed


def test_seed_defaults_to_random():
    assert accept(t2v()).seed is None


@pytest.mark.parametrize("seed", [0, -1, 2**63, "42", 1.5, True])
def test_seed_out_of_range_or_not_an_integer_is_refused(seed: Any):
    refuse(t2v(seed=seed), "invalidSeed", "seed")


# -- prompt and model ------------------------------------------------------------------------


def test_prompt_of_one_character_is_accepted_and_trimmed():
    assert accept(t2v(positivePrompt="  a \n")).prompt == "a"


def test_the_page_text_to_video_example_is_accepted_with_its_defaults():
    req = accept(
        {
            "taskType": "videoInference",
            "taskUUID": TASK_UUID,
            "model": MODEL,
            "positivePrompt": "A moonlit steampunk carnival tucked inside a narrow alley.",
            "width": 1280,
            "height": 720,
            "duration": 8,
        }
    )
    assert (req.mode, req.width, req.height, req.duration_s) == (Mode.T2V, 1280, 720, 8)
    assert (req.output_format, req.output_quality, req.number_results) == ("MP4", 95, 1)
    assert (req.include_cost, req.safety_mode, req.seed) == (False, "none", None)


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        (DROP, "missingPositivePrompt"),
        (None, "missingPositivePrompt"),
        ("", "invalidPositivePrompt"),
        ("   \n\t", "invalidPositivePrompt"),
        (5, "invalidPositivePrompt"),
        (["a"], "invalidPositivePrompt"),
    ],
)
def test_prompt_must_be_a_non_empty_string(prompt: Any, code: str):
    refuse(t2v(positivePrompt=prompt), code, "positivePrompt")


def test_prompt_length_has_a_server_limit():
    # Not on the page (only min 1): a server bound so a prompt cannot be arbitrarily large.
    limit = CARD.prompt_max_chars
    assert len(accept(t2v(positivePrompt="a" * limit)).prompt) == limit
    err = refuse(t2v(positivePrompt="a" * (limit + 1)), "invalidPositivePrompt", "positivePrompt")
    assert err.details["max"] == limit


@pytest.mark.parametrize(
    ("model", "code"),
    [
        (DROP, "missingModel"),
        ("xai:grok-imagine@image", "modelNotFound"),
        ("XAI:GROK-IMAGINE@VIDEO", "modelNotFound"),
        (5, "invalidModel"),
    ],
)
def test_model_must_be_this_model(model: Any, code: str):
    refuse(t2v(model=model), code, "model")


# -- unknown parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["negativePrompt", "fps", "steps", "CFGScale", "lora", "providerSettings", "Width"]
)
def test_parameters_the_model_does_not_take_are_refused(field: str):
    refuse(t2v(**{field: 1}), "unsupportedParameter", field)


# -- taskUUID (checked before validation, same error items) -----------------------------------


@pytest.mark.parametrize("value", [TASK_UUID, TASK_UUID.upper()], ids=["lower", "upper"])
def test_task_uuid_is_compared_in_lower_case(value: str):
    # One spelling in the store; the processor echoes the client's own in its replies.
    assert check_task_uuid(value) == TASK_UUID


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "missingTaskUUID"),
        (12345, "invalidTaskUUID"),
        ("not-a-uuid", "invalidTaskUUID"),
        (TASK_UUID.replace("-", ""), "invalidTaskUUID"),  # 32-hex form: not what was sent back
        ("{" + TASK_UUID + "}", "invalidTaskUUID"),
    ],
)
def test_task_uuid_must_be_a_uuid_string(value: Any, code: str):
    with pytest.raises(InvalidInput) as info:
        check_task_uuid(value)
    assert (info.value.code, info.value.parameter) == (code, "taskUUID")


# -- the error item a user receives ---------------------------------------------------------


def test_a_refusal_renders_as_a_runware_error_item():
    err = refuse(t2v(outputQuality=100), "invalidOutputQuality", "outputQuality")
    item = error_item(err, "videoInference", TASK_UUID)
    assert item["code"] == "invalidOutputQuality"
    assert item["parameter"] == "outputQuality"
    assert item["taskType"] == "videoInference" and item["taskUUID"] == TASK_UUID
    assert "100" in item["message"]
    assert item["documentation"].startswith("https://runware.ai/docs/models/")
    assert (item["min"], item["max"]) == (20, 99)

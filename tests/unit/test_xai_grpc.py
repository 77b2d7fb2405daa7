"""The gRPC door's translations, without a server: the SDK's messages to the REST body the
mapping reads, xAI's deferred states to `GetDeferredVideoResponse`, and the bearer key."""

from __future__ import annotations

import pytest
from xai_sdk.proto import deferred_pb2, image_pb2, video_pb2

from openimagine.api.xai.grpc import bearer, deferred_response, request_body
from openimagine.api.xai.mapping import Deferred, generation_request
from openimagine.config import DeliverySettings
from openimagine.errors import InvalidInput
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO

LIMITS = DeliverySettings(default_ttl_s=3600, max_ttl_s=7 * 24 * 3600)


def test_enums_become_xais_strings_and_unset_fields_none() -> None:
    request = video_pb2.GenerateVideoRequest(
        prompt="a lighthouse",
        model="grok-imagine-video",
        duration=3,
        aspect_ratio=video_pb2.VideoAspectRatio.VIDEO_ASPECT_RATIO_9_16,
        resolution=video_pb2.VideoResolution.VIDEO_RESOLUTION_720P,
    )
    body = request_body(request)
    assert (body["aspect_ratio"], body["resolution"], body["duration"]) == ("9:16", "720p", 3)
    assert body["image"] is None and body["video"] is None and body["generate_audio"] is None
    made = generation_request(body, GROK_IMAGINE_VIDEO, LIMITS)
    assert (made.width, made.height, made.duration_s) == (720, 1280, 3)


def test_a_zero_duration_and_unspecified_enums_are_the_defaults() -> None:
    body = request_body(video_pb2.GenerateVideoRequest(prompt="x", duration=0))
    assert (body["duration"], body["aspect_ratio"], body["resolution"]) == (None, None, None)
    assert generation_request(body, GROK_IMAGINE_VIDEO, LIMITS).duration_s == 8


def test_an_unserved_resolution_is_rejected_by_its_field_name() -> None:
    body = request_body(
        video_pb2.GenerateVideoRequest(
            prompt="x", resolution=video_pb2.VideoResolution.VIDEO_RESOLUTION_1080P
        )
    )
    with pytest.raises(InvalidInput, match=r"^resolution: .*'1080p'") as err:
        generation_request(body, GROK_IMAGINE_VIDEO, LIMITS)
    assert err.value.parameter == "resolution"


def test_image_and_video_inputs_by_url_or_file_id() -> None:
    request = video_pb2.GenerateVideoRequest(
        prompt="x",
        image=image_pb2.ImageUrlContent(image_url="data:image/png;base64,AAAA"),
        video=video_pb2.VideoUrlContent(file_id="f"),
    )
    body = request_body(request)
    assert body["image"] == {"url": "data:image/png;base64,AAAA", "file_id": None}
    assert body["video"] == {"url": None, "file_id": "f"}


def test_storage_options_are_refused_by_name() -> None:
    request = video_pb2.GenerateVideoRequest(prompt="x")
    request.storage_options.SetInParent()
    with pytest.raises(InvalidInput) as err:
        request_body(request)
    assert err.value.parameter == "storage_options"


def test_deferred_states_as_the_sdk_reads_them() -> None:
    done = deferred_response(
        Deferred("done", 100, "grok-imagine-video", url="http://h/v.mp4", duration=2,
                 cost_in_usd_ticks=1_000_000_000)
    )  # fmt: skip
    assert done.status == deferred_pb2.DeferredStatus.DONE
    video = done.response.video
    assert (video.url, video.duration, video.respect_moderation) == ("http://h/v.mp4", 2, True)
    assert done.response.usage.cost_in_usd_ticks == 1_000_000_000
    assert (done.response.model, done.response.progress) == ("grok-imagine-video", 100)

    pending = deferred_response(Deferred("pending", 40, "grok-imagine-video"))
    assert pending.status == deferred_pb2.DeferredStatus.PENDING
    assert pending.response.progress == 40 and not pending.response.HasField("error")

    failed = deferred_response(
        Deferred("failed", 100, "m", error_code="internal_error", error_message="it broke")
    )
    assert failed.status == deferred_pb2.DeferredStatus.FAILED
    assert (failed.response.error.code, failed.response.error.message) == (
        "internal_error",
        "it broke",
    )
    expired = deferred_response(Deferred("expired", 100, "m"))
    assert expired.status == deferred_pb2.DeferredStatus.EXPIRED


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ((("authorization", "Bearer k1"), ("x", "y")), "k1"),
        ((("authorization", "bearer  k2 "),), "k2"),
        ((("authorization", "Basic k3"),), None),
        ((("authorization", "Bearer "),), None),
        ((), None),
        (None, None),
    ],
)
def test_the_key_comes_from_bearer_metadata(metadata, key) -> None:
    assert bearer(metadata) == key

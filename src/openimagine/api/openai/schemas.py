"""The OpenAI-compatible `/v1/videos` API's shapes.

The models follow the official `openai` package (`openai.types.Video`, `VideoCreateParams`,
`VideoDeleteResponse`, the cursor page of `videos.list`) and OpenAI's error envelope; their
`Field` descriptions document /docs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


class ImageReference(BaseModel):
    """A first-frame image named by URL or by an uploaded media UUID (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(
        default=None,
        description="An http(s) URL of the image, or the image itself as a base64 data URL.",
        examples=["https://example.com/first-frame.png", "data:image/png;base64,iVBORw0KGgo..."],
    )
    file_id: str | None = Field(
        default=None,
        description="The UUID of an image stored with the Runware `imageUpload` or "
        "`mediaStorage` task (this server has no OpenAI Files API).",
        examples=["aac49721-1964-481a-ae78-8a4e29b91402"],
    )


class VideoCreateRequest(BaseModel):
    """`POST /v1/videos` as JSON. The same fields may be sent as multipart/form-data, where
    `input_reference` is an image file (the official SDK always sends multipart)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1,
        description="Text prompt that describes the video (Runware `positivePrompt`).",
        examples=["a lighthouse in a storm, waves crashing, thunder"],
    )
    model: str | None = Field(
        default=None,
        description="The model: `xai:grok-imagine@video`, the only one served (the default). "
        "Any other name, `sora-2` included, is refused with a 400 naming `model`.",
        examples=["xai:grok-imagine@video"],
    )
    size: str | None = Field(
        default=None,
        description="Output resolution `WIDTHxHEIGHT`, one of the model card's 14 sizes "
        "(480p: 480x480, 848x480, 480x848, 640x480, 480x640, 720x480, 480x720; 720p: 720x720, "
        "1280x720, 720x1280, 960x720, 720x960, 1088x720, 720x1088). Default `720x1280`, as "
        "OpenAI's. With `input_reference` the size picks the tier (480p or 720p) and the "
        "aspect ratio follows the image.",
        examples=["848x480", "1280x720"],
    )
    seconds: str | int | None = Field(
        default=None,
        description="Clip length in whole seconds, 1 to 15, as a string (OpenAI style) or an "
        "integer (Runware `duration`). Default `4`, as OpenAI's.",
        examples=["4"],
    )
    input_reference: ImageReference | None = Field(
        default=None,
        description="An image that becomes the first frame (image-to-video). In multipart "
        "requests, an image file part named `input_reference` (PNG, JPEG, WebP, BMP, GIF), "
        "or the fields `input_reference[image_url]` / `input_reference[file_id]`.",
    )


class VideoError(BaseModel):
    """Why a video failed."""

    code: str = Field(description="Machine-readable code.", examples=["inference_error"])
    message: str = Field(description="What went wrong.", examples=["Generation failed."])


class Video(BaseModel):
    """A video job: one Runware `videoInference` task, seen through OpenAI's Video object."""

    id: str = Field(
        description="The video's id: its Runware taskUUID (so `getResponse` finds it too).",
        examples=["6378aa49-9f31-414a-8e00-3076dea79124"],
    )
    object: Literal["video"] = Field(default="video", description="Always `video`.")
    status: VideoStatus = Field(
        description="`queued`, `in_progress`, `completed` or `failed` (a cancelled task is "
        "`failed` with the error code `task_cancelled`).",
        examples=["in_progress"],
    )
    progress: int = Field(ge=0, le=100, description="Approximate completion, 0-100.")
    created_at: int = Field(description="Unix seconds when the job was created.")
    completed_at: int | None = Field(
        default=None, description="Unix seconds when the job finished (completed or failed)."
    )
    expires_at: int | None = Field(
        default=None,
        description="Unix seconds after which the content is deleted (the task's `ttl`).",
    )
    model: str = Field(
        description="The model that produced it.", examples=["xai:grok-imagine@video"]
    )
    size: str = Field(description="Output resolution, `WIDTHxHEIGHT`.", examples=["848x480"])
    seconds: str = Field(description="Clip length in seconds.", examples=["4"])
    prompt: str | None = Field(default=None, description="The prompt it was generated from.")
    remixed_from_video_id: str | None = Field(
        default=None, description="Always null: remixes are not supported."
    )
    error: VideoError | None = Field(default=None, description="Set when `status` is `failed`.")


class VideoList(BaseModel):
    """A page of videos, newest first unless `order=asc`."""

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[Video] = Field(description="The videos of this page.")
    first_id: str | None = Field(description="The id of the first video on the page.")
    last_id: str | None = Field(
        description="The id of the last video on the page: pass it as `after` for the next."
    )
    has_more: bool = Field(description="Whether more videos follow this page.")


class VideoDeleted(BaseModel):
    """Confirmation that a video and its stored files are gone."""

    id: str = Field(description="The deleted video's id.")
    object: Literal["video.deleted"] = Field(
        default="video.deleted", description="Always `video.deleted`."
    )
    deleted: bool = Field(description="Always true.")


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str = Field(description="What is wrong, for people.")
    type: str = Field(
        description="`invalid_request_error` (4xx) or `server_error` (5xx).",
        examples=["invalid_request_error"],
    )
    param: str | None = Field(
        description="The request parameter at fault, if any.", examples=["size"]
    )
    code: str | None = Field(
        description="Machine-readable code.", examples=["unsupported_dimensions"]
    )


class ErrorResponse(BaseModel):
    """`{"error": {...}}`, as OpenAI's API answers errors."""

    error: ErrorDetail

"""Rules of a model card that every door applies, each error naming the door's own field.

A door passes the name it gave the field (`positivePrompt` on Runware, `prompt` on OpenAI), so
that its users read errors in their own vocabulary and no table maps one door's names onto
another's.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from openimagine.errors import InvalidInput
from openimagine.models.card import ModelCard, Size


def _camel(parameter: str) -> str:
    """`inputs.frameImages` → `FrameImages`, used to build codes like `invalidFrameImages`."""
    last = parameter.split(".")[-1].split("[")[0]
    return last[:1].upper() + last[1:]


def missing(parameter: str, message: str | None = None) -> InvalidInput:
    """Error for a required parameter that is absent (`missing<Name>`)."""
    return InvalidInput(
        message or f"Missing required parameter: {parameter}.",
        code=f"missing{_camel(parameter)}",
        parameter=parameter,
    )


def invalid(parameter: str, message: str, **details: Any) -> InvalidInput:
    """Error for a parameter with a wrong type or value (`invalid<Name>`)."""
    return InvalidInput(message, code=f"invalid{_camel(parameter)}", parameter=parameter, **details)


def check_model(card: ModelCard, model: str | None, parameter: str) -> str:
    """The card's id, when `model` names it."""
    if model != card.id:
        raise InvalidInput(
            f"Unknown model {model!r}. This server serves {card.id}.",
            code="modelNotFound",
            parameter=parameter,
            allowedValues=[card.id],
        )
    return card.id


def check_text(parameter: str, value: str) -> str:
    """A string that every store can hold and every encoder can write back: no NUL and no
    unpaired surrogate.

    PostgreSQL's text cannot hold U+0000, and a lone surrogate (JSON `"\\ud800"`) is not
    Unicode, so neither orjson nor psycopg can encode it; refused here, such a value never
    reaches a store in which it would fail on write or, worse, on every read.
    """
    if "\x00" in value:
        raise invalid(
            parameter,
            f"Invalid value for {parameter}: it contains a NUL character (U+0000).",
            type="string",
        )
    # perf: `isascii` is O(1) on CPython, so only non-ASCII text pays for the encode.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise invalid(
                parameter,
                f"Invalid value for {parameter}: it contains an unpaired surrogate "
                "(text that is not valid Unicode).",
                type="string",
            ) from None
    return value


def check_prompt(card: ModelCard, prompt: str, parameter: str) -> str:
    """The prompt without surrounding whitespace: valid text, not empty, not over the card's
    limit."""
    prompt = check_text(parameter, prompt).strip()
    if not prompt:
        raise invalid(parameter, f"{parameter} must have at least 1 character.", min=1)
    if len(prompt) > card.prompt_max_chars:
        raise invalid(
            parameter,
            f"{parameter} is longer than {card.prompt_max_chars} characters.",
            max=card.prompt_max_chars,
        )
    return prompt


def check_size(card: ModelCard, width: int, height: int, parameter: str) -> Size:
    """One of the card's sizes."""
    size = card.size(width, height)
    if size is None:
        allowed = [s.label for s in card.sizes]
        raise InvalidInput(
            f"Unsupported dimensions {width}x{height}. Supported: {', '.join(allowed)}.",
            code="unsupportedDimensions",
            parameter=parameter,
            allowedValues=allowed,
        )
    return size


def check_task_uuid(value: Any) -> str:
    """The UUID of an existing task, in its canonical lower-case form: task UUIDs are compared
    case-insensitively, so each is stored and looked up in one spelling.

    Any RFC 4122 version is looked up (the OpenAI door names its tasks with UUID v5), but only
    the 36-character hyphenated form: a form the client did not send could not be echoed back.
    """
    if value is None:
        raise missing("taskUUID")
    if not isinstance(value, str):
        raise invalid("taskUUID", "Invalid value for taskUUID: expected a UUID string.")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise invalid("taskUUID", f"Invalid value for taskUUID: {value!r} is not a UUID.") from None
    canonical = str(parsed)
    if value.lower() != canonical:
        raise invalid("taskUUID", "Invalid value for taskUUID: use the 36-character UUID form.")
    return canonical


def check_new_task_uuid(value: Any) -> str:
    """The UUID a client names a new task with, canonical (see `check_task_uuid`): a UUID v4,
    as the model page requires."""
    canonical = check_task_uuid(value)
    parsed = uuid.UUID(canonical)
    if parsed.variant != uuid.RFC_4122 or parsed.version != 4:
        raise invalid(
            "taskUUID",
            f"Invalid value for taskUUID: expected a random UUID (version 4), got {value!r}.",
            format="UUID v4",
        )
    return canonical


# Long enough for presigned upload URLs (a temporary credential's session token alone can
# take 1-2 KB, so the common 2,048 would refuse real S3 URLs), and no longer than the request
# line common servers read (nginx and Apache stop near 8 KiB): a longer URL could not be sent.
MAX_URL_CHARS = 8192
# Whitespace and C0/C1 control characters: a URL must percent-encode them, and a NUL cannot be
# stored at all (PostgreSQL).
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
# A DNS name or IPv4 address; an IPv6 literal (with a colon) was checked by `urlsplit`.
_HOST_NAME = re.compile(r"^[a-z0-9._-]+$")


def check_url(parameter: str, value: str) -> str:
    """An absolute http(s) URL this server can send a request to (where it points is checked
    when it is used: `media.netguard`).

    Refused here, with an error naming `parameter`, rather than failing on every delivery try:
    a port outside 1-65535, whitespace or a control character anywhere, no host, a host name
    with characters no DNS name has, another scheme, or more than `MAX_URL_CHARS` characters.
    User info (`user:pass@`) is allowed: the sender sends it as HTTP Basic authentication.
    """
    check_text(parameter, value)
    expected = f"Invalid value for {parameter}: expected an absolute http(s) URL"
    if len(value) > MAX_URL_CHARS:
        raise invalid(
            parameter,
            f"Invalid value for {parameter}: the URL is longer than {MAX_URL_CHARS} characters.",
            type="URI",
            max=MAX_URL_CHARS,
        )
    if _UNSENDABLE.search(value):
        raise invalid(
            parameter,
            f"{expected}; it contains whitespace or a control character (percent-encode them).",
            type="URI",
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        # urllib says why (a port out of range or not a number, a bad IPv6 literal), but its
        # text is not ours to promise; the port is the common case.
        raise invalid(
            parameter,
            f"{expected}; its host or port is malformed (a port is a number from 1 to 65535).",
            type="URI",
        ) from None
    if parts.scheme not in ("http", "https"):
        raise invalid(parameter, f"{expected}.", type="URI")
    host = parts.hostname
    if not host or (host.isascii() and ":" not in host and not _HOST_NAME.match(host)):
        raise invalid(parameter, f"{expected} with a valid host name.", type="URI")
    if port == 0:
        raise invalid(
            parameter, f"{expected}; its port must be a number from 1 to 65535.", type="URI"
        )
    return value

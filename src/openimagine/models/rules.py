"""Rules of a model card that every door applies, each error naming the door's own field.

A door passes the name it gave the field (`positivePrompt` on Runware, `prompt` on OpenAI), so
that its users read errors in their own vocabulary and no table maps one door's names onto
another's.
"""

from __future__ import annotations

import uuid
from typing import Any

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


def check_prompt(card: ModelCard, prompt: str, parameter: str) -> str:
    """The prompt without surrounding whitespace: not empty, not over the card's limit."""
    prompt = prompt.strip()
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
    """A task UUID as the client sent it (any RFC 4122 form; echoed back unchanged)."""
    if value is None:
        raise missing("taskUUID")
    if not isinstance(value, str):
        raise invalid("taskUUID", "Invalid value for taskUUID: expected a UUID string.")
    try:
        uuid.UUID(value)
    except ValueError:
        raise invalid("taskUUID", f"Invalid value for taskUUID: {value!r} is not a UUID.") from None
    if len(value) != 36:
        raise invalid("taskUUID", "Invalid value for taskUUID: use the 36-character UUID form.")
    return value

"""Classify and decode the ways a media input arrives: UUID, URL, data URI, or bare base64."""

from __future__ import annotations

import base64
import binascii
import enum
import re
import uuid
from dataclasses import dataclass

from openimagine.errors import MediaError

_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)"
    r"(?P<b64>;base64)?,(?P<data>.*)$",
    re.DOTALL,
)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


class SourceKind(enum.StrEnum):
    """How an input string refers to its media."""

    UUID = "uuid"
    URL = "url"
    DATA_URI = "dataURI"
    BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class Source:
    """A classified input string."""

    kind: SourceKind
    value: str


def classify(value: str) -> Source:
    """Tell a UUID from a URL, a data URI, or bare base64."""
    v = value.strip()
    if len(v) == 36:
        try:
            uuid.UUID(v)
        except ValueError:
            pass
        else:
            return Source(SourceKind.UUID, v.lower())
    lower = v[:8].lower()
    if lower.startswith(("http://", "https://")):
        return Source(SourceKind.URL, v)
    if lower.startswith("data:"):
        return Source(SourceKind.DATA_URI, v)
    return Source(SourceKind.BASE64, v)


def decode_inline(source: Source, parameter: str, max_bytes: int) -> tuple[bytes, str | None]:
    """Bytes (and declared MIME type) of a data URI or bare base64 input.

    The size check happens on the encoded length first, so an oversized input is refused
    before it is decoded.
    """
    mime: str | None = None
    payload = source.value
    if source.kind is SourceKind.DATA_URI:
        m = _DATA_URI.match(payload)
        if m is None or not m.group("b64"):
            raise MediaError(
                f"{parameter}: malformed data URI (expected data:<type>;base64,...).",
                code="invalidDataURI",
                parameter=parameter,
            )
        mime, payload = m.group("mime"), m.group("data")
    elif source.kind is not SourceKind.BASE64:
        raise ValueError(f"not an inline source: {source.kind}")
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > max_bytes:
        raise MediaError(
            f"{parameter}: the input is larger than the {max_bytes} byte limit.",
            code="mediaTooLarge",
            parameter=parameter,
            max=max_bytes,
        )
    if not payload or not _B64_CHARS.match(payload):
        raise MediaError(
            f"{parameter}: not a UUID, URL, data URI or valid base64.",
            code="invalidBase64",
            parameter=parameter,
        )
    try:
        data = _b64decode(payload)
    except (binascii.Error, ValueError):
        raise MediaError(
            f"{parameter}: not valid base64.", code="invalidBase64", parameter=parameter
        ) from None
    return data, mime


def _b64decode(payload: str) -> bytes:
    padded = payload + "=" * (-len(payload) % 4)
    if "-" in payload or "_" in payload:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)

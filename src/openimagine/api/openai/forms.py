"""Request bodies of `/v1/videos`: the key checked first, then JSON, multipart/form-data (as
the official SDK sends) or urlencoded, read within limits as the JSON object
`VideoCreateRequest` describes.

Multipart bodies stream through python-multipart (as Starlette's forms do) a chunk at a time,
so no step of the parse holds the event loop for long.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from openimagine.api.body import LimitedBody, invalid_body, json_bytes, load_json
from openimagine.api.deps import api_deps, bearer_token
from openimagine.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_PARTS = 32  #: form fields and files in one body (a create has at most a dozen)
MAX_FIELD_BYTES = 1 << 20  #: one text field: ample for a 20,000-character prompt
_FILE_FIELD = "input_reference"  # the one file a create takes; its limit is the body's
_JSON_OBJECT = re.compile(rb"[ \t\r\n]*\{")


def _field_too_large(name: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The form field {name!r} is larger than {MAX_FIELD_BYTES} bytes.",
        parameter=name,
        max=MAX_FIELD_BYTES,
    )


def _too_many_parts() -> InvalidInput:
    return InvalidInput(
        f"A form body has at most {MAX_PARTS} parts.",
        code="tooManyFormParts",
        parameter="body",
        max=MAX_PARTS,
    )


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = "text/plain"
    data: bytearray = field(default_factory=bytearray)


class _MultipartReader:
    """python-multipart's callbacks, collecting parts within `MAX_PARTS` and
    `MAX_FIELD_BYTES`, with at most one file (`input_reference`)."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self._part = _Part()
        self._header = (bytearray(), bytearray())
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        """The callbacks to hand `MultipartParser`."""
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._header[0].extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header[1].extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": lambda: self.parts.append(self._part),
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise _too_many_parts()
        self._part, self._headers = _Part(), {}

    def _header_end(self) -> None:
        name, value = self._header
        self._headers[bytes(name).lower()] = bytes(value)
        self._header = (bytearray(), bytearray())

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise invalid_body("has a form part without a name")
        part = self._part
        part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            if part.name != _FILE_FIELD:
                raise InvalidInput(f"Unexpected file field {part.name!r}.", parameter=part.name)
            if any(p.filename is not None for p in self.parts):
                raise InvalidInput(f"Only one {_FILE_FIELD} file.", parameter=_FILE_FIELD)
            part.filename = options[b"filename"].decode("utf-8", "replace")
            content_type, _ = parse_options_header(self._headers.get(b"content-type"))
            part.content_type = content_type.decode("latin-1") or "application/octet-stream"

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.filename is None and len(part.data) + end - start > MAX_FIELD_BYTES:
            raise _field_too_large(part.name)
        part.data.extend(data[start:end])


async def _multipart_parts(body: LimitedBody, content_type: str) -> list[_Part]:
    """The parts of a multipart/form-data body, parsed as it streams in."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise invalid_body("is multipart/form-data without a boundary")
    reader = _MultipartReader()
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        async for chunk in body.chunks():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise invalid_body(f"is malformed multipart/form-data: {exc}") from None
    return reader.parts


def _urlencoded_parts(body: bytes) -> list[_Part]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_PARTS
        )
    except ValueError:  # more than max_num_fields
        raise _too_many_parts() from None
    for name, value in pairs:
        if len(value) > MAX_FIELD_BYTES:
            raise _field_too_large(name)
    return [_Part(name, None, "text/plain", bytearray(v.encode())) for name, v in pairs]


def _form_fields(parts: list[_Part]) -> dict[str, Any]:
    """Form parts as the JSON object `VideoCreateRequest` reads: the `input_reference` file
    becomes `{"image_url": <data URI>}`, `a[b]` fields nest."""
    fields: dict[str, Any] = {}
    for part in parts:
        name = part.name
        if part.filename is not None:
            uri = f"data:{part.content_type};base64,{base64.b64encode(part.data).decode()}"
            fields[_FILE_FIELD] = {"image_url": uri}
            continue
        try:
            text = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{name}: not UTF-8 text.", parameter=name) from None
        nested = re.fullmatch(r"(\w+)\[(\w+)\]", name)
        if nested is None:
            fields[name] = text
            continue
        group = fields.setdefault(nested[1], {})
        if not isinstance(group, dict):
            raise InvalidInput(
                f"{nested[1]} is given both whole and by its fields.", parameter=name
            )
        group[nested[2]] = text
    return fields


class _BufferedRequest(Request):
    """A request whose body was already read and parsed (a form rewritten as JSON)."""

    def __init__(self, request: Request, body: bytes, value: Any) -> None:
        scope = dict(request.scope)
        drop = (b"content-type", b"content-length")
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k not in drop] + [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        super().__init__(scope, request.receive)
        self._buffered = body
        if body:
            self._json = value  # what FastAPI's `request.json()` returns: not parsed again

    async def body(self) -> bytes:
        """The buffered body."""
        return self._buffered


async def as_json(request: Request) -> Request:
    """The request, once its key is good, with its body read within the body limit and
    parsed: JSON (nested at most `body.MAX_JSON_DEPTH` deep), or a form rewritten as the JSON
    object the routes read. Raises `AuthError` before any of the body is read."""
    deps = api_deps(request)
    await deps.auth.owner(bearer_token(request.headers))
    body = LimitedBody(request, deps.server.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        fields = _form_fields(await _multipart_parts(body, content_type))
        return _BufferedRequest(request, json_bytes(fields), fields)
    raw = await body.all()
    urlencoded = content_type.lower().startswith("application/x-www-form-urlencoded")
    if urlencoded and not _JSON_OBJECT.match(raw):  # compat: `curl -d '{...}'` without a type
        fields = _form_fields(_urlencoded_parts(raw))
        return _BufferedRequest(request, json_bytes(fields), fields)
    return _BufferedRequest(request, raw, await load_json(raw) if raw else None)

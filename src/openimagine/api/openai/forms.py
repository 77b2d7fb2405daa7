"""Form bodies (multipart/form-data, as the official SDK sends, or urlencoded) read as the
JSON object `VideoCreateRequest` describes."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from openimagine.api.body import read_body
from openimagine.api.deps import api_deps
from openimagine.errors import InvalidInput


def _form_parts(body: bytes, content_type: str) -> list[tuple[str, str | None, str, bytes]]:
    """(name, filename, content type, bytes) of each part of a form body."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return [(k, None, "text/plain", v.encode()) for k, v in pairs]
    # compat: the stdlib MIME parser, so that multipart needs no extra dependency.
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidInput("Malformed multipart/form-data body.", code="invalidRequestBody")
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts.append((name, part.get_filename(), part.get_content_type(), payload))
    return parts


def _form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """A form body as the JSON object `VideoCreateRequest` reads: an image file part named
    `input_reference` becomes `{"image_url": <data URI>}`, `a[b]` fields nest."""
    fields: dict[str, Any] = {}
    for name, filename, part_type, data in _form_parts(body, content_type):
        if filename is not None:
            if name != "input_reference":
                raise InvalidInput(f"Unexpected file field {name!r}.", parameter=name)
            uri = f"data:{part_type};base64,{base64.b64encode(data).decode()}"
            fields["input_reference"] = {"image_url": uri}
            continue
        try:
            text = data.decode("utf-8")
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
    """A request whose body was already read (and perhaps rewritten as JSON)."""

    def __init__(self, request: Request, body: bytes, content_type: str) -> None:
        scope = dict(request.scope)
        drop = (b"content-type", b"content-length")
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k not in drop] + [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        super().__init__(scope, request.receive)
        self._buffered = body

    async def body(self) -> bytes:
        """The buffered body."""
        return self._buffered


async def as_json(request: Request) -> Request:
    """The request with a form body rewritten as the JSON object the routes read."""
    body = await read_body(request, api_deps(request).server.max_body_bytes)
    content_type = request.headers.get("content-type", "").lower()
    form = content_type.startswith("multipart/form-data") or (
        content_type.startswith("application/x-www-form-urlencoded")
        and not body.lstrip().startswith(b"{")  # compat: `curl -d '{...}'` without a type
    )
    if form:
        body = json.dumps(_form_fields(body, request.headers["content-type"])).encode()
    return _BufferedRequest(request, body, "application/json")

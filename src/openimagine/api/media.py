"""Serving the local blob store's files behind HMAC-signed, expiring URLs."""

from __future__ import annotations

import mimetypes
import time

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from openimagine.api.deps import Services
from openimagine.api.runware import RunwareRoute
from openimagine.delivery.blobs import check_key, media_path
from openimagine.errors import Expired, Forbidden, NotFound

router = APIRouter(route_class=RunwareRoute)


@router.get("/media/{key:path}", tags=["media"], summary="Download a result or upload")
async def get_media(
    deps: Services,
    key: str,
    exp: int = Query(description="Expiry (Unix seconds), part of the signature."),
    sig: str = Query(description="HMAC signature of the path and expiry."),
) -> Response:
    """The bytes of a blob, if the URL's signature is valid and not expired. Supports Range."""
    try:
        check_key(key)
    except ValueError:
        raise NotFound("Not found.", code="mediaNotFound") from None
    if not deps.signer.verify(media_path(key), exp, sig, now=0):
        raise Forbidden("Invalid signature.")
    if time.time() >= exp:
        raise Expired("This URL has expired.")
    local = deps.blobs.local_path(key)
    if local is None:
        raise NotFound("Not found: the file was deleted.", code="mediaNotFound")
    media_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
    return FileResponse(local, media_type=media_type, headers={"Cache-Control": "private"})

"""Serving stored results and uploads behind HMAC-signed, expiring URLs."""

from __future__ import annotations

import mimetypes
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from openimagine.delivery.blobs import LocalBlobStore, check_key
from openimagine.delivery.items import media_path
from openimagine.delivery.signing import UrlSigner

router = APIRouter()


def _denied(message: str, status: int = 403) -> JSONResponse:
    code = "urlExpired" if status == 410 else "invalidSignature"
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status)


@router.get("/media/{key:path}", tags=["media"], summary="Download a result or upload")
async def get_media(
    request: Request,
    key: str,
    exp: int = Query(description="Expiry (Unix seconds), part of the signature."),
    sig: str = Query(description="HMAC signature of the path and expiry."),
) -> Response:
    """The bytes of a blob, if the URL's signature is valid and not expired. Supports Range."""
    signer: UrlSigner = request.app.state.signer
    blobs: LocalBlobStore = request.app.state.blobs
    try:
        check_key(key)
    except ValueError:
        return _denied("Not found.", 404)
    path = media_path(key)
    if not signer.verify(path, exp, sig, now=0):
        return _denied("Invalid signature.")
    if time.time() >= exp:
        return _denied("This URL has expired.", 410)
    local = blobs.path(key)
    if local is None:
        return _denied("Not found.", 404)
    media_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
    return FileResponse(local, media_type=media_type, headers={"Cache-Control": "private"})

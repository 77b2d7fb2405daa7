"""Serving the blob store's files behind HMAC-signed, expiring URLs: local files directly,
objects in S3 as a redirect to a short-lived presigned URL (links that outlive presigning's
7-day limit are these)."""

from __future__ import annotations

import mimetypes
import time

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, RedirectResponse, Response

from openimagine.api.deps import Services
from openimagine.api.runware import RunwareRoute
from openimagine.delivery.blobs import check_key, media_path
from openimagine.errors import Expired, Forbidden, NotFound

router = APIRouter(route_class=RunwareRoute)

# How long the presigned URL that a redirect points at works: long enough for a slow
# download to resume, short enough that a copied Location header soon stops working.
REDIRECT_TTL_S = 3600


@router.get("/media/{key:path}", tags=["media"], summary="Download a result or upload")
async def get_media(
    deps: Services,
    key: str,
    # Optional to FastAPI, so that a URL without its signature is this route's 403 in the
    # Runware envelope rather than a validation error (422) that names what is missing.
    exp: str | None = Query(None, description="Expiry (Unix seconds), part of the signature."),
    sig: str | None = Query(None, description="HMAC signature of the path and expiry."),
) -> Response:
    """The bytes of a blob, if the URL's signature is valid and not expired. Supports Range."""
    try:
        check_key(key)
    except ValueError:
        raise NotFound("Not found.", code="mediaNotFound") from None
    expires = _expiry(exp)
    if sig is None or expires is None:
        raise Forbidden("Missing or malformed signature: use the signed URL as it was given.")
    if not deps.signer.verify(media_path(key), expires, sig, now=0):
        raise Forbidden("Invalid signature.")
    if time.time() >= expires:
        raise Expired("This URL has expired.")
    local = deps.blobs.local_path(key)
    if local is None:
        return await _redirect(deps, key, expires)
    media_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
    return FileResponse(local, media_type=media_type, headers={"Cache-Control": "private"})


async def _redirect(deps: Services, key: str, expires: int) -> Response:
    """A redirect to the blob on the server that keeps it (S3), or 404 when it is gone."""
    target = deps.blobs.direct_url(key, min(expires, time.time() + REDIRECT_TTL_S))
    if target is None or await anyio.to_thread.run_sync(deps.blobs.size, key) is None:
        raise NotFound("Not found: the file was deleted.", code="mediaNotFound")
    return RedirectResponse(target, status_code=307, headers={"Cache-Control": "no-store"})


def _expiry(exp: str | None) -> int | None:
    """The expiry as the signer wrote it (decimal Unix seconds), or None."""
    if exp is None or not (exp.isascii() and exp.isdigit()) or len(exp) > 20:
        return None
    return int(exp)

"""Fetch an input from an http(s) URL on a user's behalf: the SSRF guard on the URL and on
every redirect, a timeout, and a size cap enforced while reading."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from openimagine.__about__ import __version__
from openimagine.errors import MediaError
from openimagine.media.netguard import BlockedAddress, IPNetwork, check_url


async def fetch(
    url: str,
    parameter: str,
    max_bytes: int,
    *,
    timeout_s: float,
    max_redirects: int,
    allowed_networks: Sequence[IPNetwork] = (),
) -> bytes:
    """GET `url`; every failure is a `MediaError` naming `parameter`."""
    async with httpx.AsyncClient(
        timeout=timeout_s,
        follow_redirects=False,
        headers={"User-Agent": f"openimagine/{__version__}"},
    ) as client:
        for _ in range(max_redirects + 1):
            try:
                await check_url(url, allowed_networks)
            except BlockedAddress as exc:
                raise MediaError(
                    f"{parameter}: {exc}", code="mediaFetchBlocked", parameter=parameter
                ) from None
            try:
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code != 200:
                        raise MediaError(
                            f"{parameter}: fetching {url} gave HTTP {response.status_code}.",
                            code="mediaFetchFailed",
                            parameter=parameter,
                        )
                    return await _read_capped(response, parameter, max_bytes)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a bad redirect
                raise MediaError(
                    f"{parameter}: fetching {url} failed ({type(exc).__name__}).",
                    code="mediaFetchFailed",
                    parameter=parameter,
                ) from None
    raise MediaError(
        f"{parameter}: more than {max_redirects} redirects.",
        code="mediaFetchFailed",
        parameter=parameter,
    )


async def _read_capped(response: httpx.Response, parameter: str, max_bytes: int) -> bytes:
    too_large = MediaError(
        f"{parameter}: the input is larger than the {max_bytes} byte limit.",
        code="mediaTooLarge",
        parameter=parameter,
        max=max_bytes,
    )
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)

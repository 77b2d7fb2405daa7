"""SSRF guard: the addresses an outbound request of this server may reach.

Every URL the server calls on a user's behalf (webhooks, upload endpoints, media fetches) is
resolved first, and refused when any address it resolves to is loopback, private, link-local,
CGNAT, multicast, reserved or a cloud metadata address, unless the operator allowed that
network (`OPENIMAGINE_ALLOWED_NETWORKS`). Redirects are never followed blindly: a
caller that follows one checks the new URL again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# `is_private` covers RFC 1918, loopback, link-local (169.254/16 holds the metadata address)
# and more; CGNAT (100.64/10) is `is_shared`, not private, so it is listed here.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class BlockedAddress(Exception):
    """A URL that this server will not call; the message says why, for the user."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"10.0.0.0/8, 127.0.0.1/32"` → networks; raises ValueError naming a bad entry."""
    nets: list[IPNetwork] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"not a CIDR network: {part!r}") from exc
    return tuple(nets)


def is_public(ip: IPAddress) -> bool:
    """True when `ip` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public(ip.ipv4_mapped)
    if any(ip in net for net in _EXTRA_BLOCKED):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_ip(ip: IPAddress, allowed: Sequence[IPNetwork]) -> None:
    """Raise BlockedAddress unless `ip` is public or in an allowed network."""
    if is_public(ip) or any(ip in net for net in allowed):
        return
    raise BlockedAddress(
        f"{ip} is a private, loopback, link-local or reserved address, which this server does "
        "not call (an operator can allow a network with OPENIMAGINE_ALLOWED_NETWORKS)"
    )


async def check_url(url: str, allowed: Sequence[IPNetwork]) -> None:
    """Resolve `url`'s host and check every address it resolves to.

    A URL that cannot be called at all (a port out of range, a NUL, a host no resolver
    takes) is a `BlockedAddress` too, so that a sender gives it up at once instead of
    retrying it; submit refuses such URLs (`models.rules.check_url`), but rows stored before
    that check came still reach here.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedAddress("the URL's host or port is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress("only http(s) URLs with a host can be called")
    if port == 0:
        raise BlockedAddress("port 0 cannot be called")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await anyio.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # ValueError: a NUL, or a name IDNA cannot encode
        # The resolver's own words describe this server's resolver, not the user's URL.
        raise BlockedAddress(f"cannot resolve the host {parts.hostname!r}") from None
    for info in infos:
        check_ip(ipaddress.ip_address(info[4][0]), allowed)

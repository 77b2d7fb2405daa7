"""The SSRF guard: which addresses an outbound request may reach."""

from __future__ import annotations

import ipaddress

import pytest

from openimagine.media.netguard import BlockedAddress, check_ip, check_url, parse_networks

REFUSED = [
    "127.0.0.1",  # loopback
    "10.1.2.3",  # private
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: the cloud metadata address
    "100.64.0.1",  # CGNAT
    "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
    "224.0.0.1",  # multicast
    "::1",
    "fc00::1",  # unique local
    "fe80::1",  # link-local
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "fd00:ec2::254",  # AWS metadata over IPv6
]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_special_addresses_are_refused(address: str):
    with pytest.raises(BlockedAddress, match="private, loopback"):
        check_ip(ipaddress.ip_address(address), ())


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str):
    check_ip(ipaddress.ip_address(address), ())


def test_an_allowed_network_opens_only_itself():
    allowed = parse_networks(" 127.0.0.1/32 , 10.0.0.0/8")
    check_ip(ipaddress.ip_address("127.0.0.1"), allowed)
    check_ip(ipaddress.ip_address("10.200.0.1"), allowed)
    with pytest.raises(BlockedAddress):
        check_ip(ipaddress.ip_address("127.0.0.2"), allowed)


def test_a_bad_network_setting_is_named():
    with pytest.raises(ValueError, match="not a CIDR network: 'ten'"):
        parse_networks("10.0.0.0/8,ten")


async def test_names_are_checked_after_dns_resolution():
    with pytest.raises(BlockedAddress, match=r"127\.0\.0\.1"):
        await check_url("http://localhost:8080/hook", ())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost"])
async def test_only_http_urls_with_a_host(url: str):
    with pytest.raises(BlockedAddress, match="only http"):
        await check_url(url, ())

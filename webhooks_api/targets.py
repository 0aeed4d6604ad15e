"""Which webhook target URLs are allowed: scheme, the HTTPS rule and the SSRF rule.

Checked when a subscription is created or changed; the worker's HTTP client checks the
resolved address again at send time and connects to exactly that address.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES

from .config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_forbidden_address(address: Address) -> bool:
    """Loopback, private, link-local, multicast, reserved, CGNAT and the like."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in EXTRA_BLOCKED_NET_RANGES)
    )


def resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def target_url_errors(url: str, settings: Settings) -> list[str]:
    """Messages a person can act on; empty when the URL may be used."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return [f"not a valid URL: {error}"]
    if parts.scheme not in ("http", "https"):
        return ["URL scheme must be http or https"]
    if not parts.hostname:
        return ["URL must include a host"]
    if parts.username or parts.password:
        return ["URL must not include credentials; use custom headers instead"]
    if settings.require_https and parts.scheme != "https":
        return ["URL must use https (WEBHOOKS_REQUIRE_HTTPS is on)"]
    if settings.allow_private_targets:
        return []
    try:
        addresses = resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError):
        return [f"host {parts.hostname!r} does not resolve"]
    if any(is_forbidden_address(address) for address in addresses):
        return [f"host {parts.hostname!r} is or resolves to a private or reserved address"]
    return []

"""Which webhook target URLs are allowed: scheme, the HTTPS rule and the SSRF rule.

The HTTPS rule, `breaks_https_rule`, is judged when a subscription is created or changed
and again by the worker before each attempt, since a subscription made with `http://`
before WEBHOOKS_REQUIRE_HTTPS was turned on must not be contacted either.

One predicate, `is_forbidden_address`, and one resolution rule, `checked_addresses`, serve
both places a target is judged: here when a subscription is created or changed, and in the
worker's HTTP client (webhooks_worker.delivery.http_client) at send time, which then
connects to exactly the address it checked, so a name that resolves elsewhere later (DNS
rebinding) changes nothing. Spellings such as `2130706433`, `0177.0.0.1`, `0x7f.0.0.1` or
`[::ffff:127.0.0.1]` need no special case: the system resolver turns them into the address
they mean, and that address is what is judged. Both places read the URL with one parser
(webhooks_api.domain.urls).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import TYPE_CHECKING

from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES

from webhooks_api.domain.urls import DEFAULT_PORTS, InvalidUrlError, parse_target

if TYPE_CHECKING:
    from webhooks_api.config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

HTTPS_REQUIRED = "URL must use https (WEBHOOKS_REQUIRE_HTTPS is on)"


class ForbiddenAddressError(Exception):
    """The target is or resolves to an address the SSRF rule refuses."""

    def __init__(self, host: str, address: Address):
        super().__init__(f"host {host!r} resolves to a forbidden address")
        self.host = host
        self.address = address


def is_forbidden_address(address: Address) -> bool:
    """Loopback, private, link-local, site-local, multicast, reserved, CGNAT and the like.

    An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it carries;
    everything Python does not call global is refused, plus requests-hardened's extra
    ranges (CGNAT 100.64/10, NAT64, 6to4, ...).
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address in network for network in EXTRA_BLOCKED_NET_RANGES)
    )


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (IP literals in any spelling resolve to themselves).

    An address in its standard form is itself, as getaddrinfo would answer, without asking
    it: under the worker's gevent pool every lookup is a round trip through the hub's thread
    pool. Other spellings ('127.1', '2130706433', a zone index) are read by the C library,
    as the connection would read them."""
    if "%" not in host:
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(host)]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def checked_addresses(host: str, port: int, refuse_private: bool) -> list[Address]:
    """Resolve `host` once; with `refuse_private`, raise ForbiddenAddressError when ANY of
    its addresses is forbidden (a name with one private record is refused outright, whatever
    order the resolver returns). Raises OSError when the name does not resolve."""
    addresses = resolve(host, port)
    if refuse_private:
        for address in addresses:
            if is_forbidden_address(address):
                raise ForbiddenAddressError(host, address)
    return addresses


def breaks_https_rule(url: str, settings: Settings) -> bool:
    try:
        return settings.require_https and parse_target(url).scheme != "https"
    except InvalidUrlError:
        return settings.require_https


def target_url_errors(url: str, settings: Settings) -> list[str]:
    """Messages a person can act on; empty when the URL may be used."""
    try:
        parts = parse_target(url)
    except InvalidUrlError as error:
        return [f"not a valid URL: {error}"]
    if parts.scheme not in DEFAULT_PORTS:
        return ["URL scheme must be http or https"]
    if not parts.host:
        return ["URL must include a host"]
    if parts.has_credentials:
        return ["URL must not include credentials; use custom headers instead"]
    if breaks_https_rule(url, settings):
        return [HTTPS_REQUIRED]
    if settings.allow_private_targets:
        return []
    try:
        checked_addresses(parts.host, parts.effective_port, refuse_private=True)
    except ForbiddenAddressError:
        return [f"host {parts.host!r} is or resolves to a private or reserved address"]
    except (OSError, UnicodeError):
        return [f"host {parts.host!r} does not resolve"]
    return []

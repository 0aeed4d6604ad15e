"""Deliveries through the egress proxy (WEBHOOKS_EGRESS_PROXY), so that receivers can
allow-list the proxy's static addresses.

Every connection is an HTTP CONNECT tunnel to the address the client resolved and checked
against the SSRF rule, for http:// targets too. The proxy is never given the host name:
in a request in absolute form (what urllib3's ProxyManager sends for http:// targets) it
would resolve the name again, and a DNS answer that changed since the check could take
the request to a private address. Host, SNI and the certificate's expected name stay the
URL's host, set by the client as without a proxy. The proxy's own address is the
operator's and is not judged by the SSRF rule (it may well be private).

urllib3's tunnelling does the CONNECT (`set_tunnel`, `_tunnel`); `TunnelledConnection`
only decides where it goes and makes sure it happens for every new socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
from http.client import HTTPException

from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import HAS_IPV6

from webhooks_api.config import EgressProxy
from webhooks_api.domain.ssrf import Address, resolve


class EgressProxyError(OSError):
    """The egress proxy could not be reached or opened no tunnel. An OSError, so urllib3
    reports it as it does any failed connection (`connection_error`). The message never
    names the proxy's address or credentials: an attempt's error is shown to the tenant."""


def authority(host: str, port: int) -> str:
    """`host:port` as a CONNECT line and a Host header write it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def usable(addresses: list[Address]) -> Address:
    """The first address this machine can connect to (an IPv4 one when it has no IPv6)."""
    return next((a for a in addresses if a.version == 4 or HAS_IPV6), addresses[0])


class TunnelledConnection:
    """Mixin for urllib3 connections: with an `egress` proxy, every connection is a
    CONNECT tunnel to the address the connection was made for (the pool's, the checked
    IP), and the socket goes to the proxy instead.

    urllib3 forgets a tunnel whenever its connection closes (a kept-alive one the receiver
    hung up on, say), so `connect` sets it again for every new socket: no socket reaches
    the proxy without a CONNECT to the checked address first.
    """

    def __init__(self, *args, egress: EgressProxy | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._egress = egress
        self._checked = (self.host, self.port)

    def resolve_proxy(self, host: str, port: int) -> list[Address]:
        """The addresses of a proxy named by a host name (the client waits for them under
        the attempt's deadline)."""
        return resolve(host, port)

    def connect(self):
        if self._egress is not None:
            host, port = self._checked
            headers = {"Host": authority(host, port)}
            if self._egress.authorization:
                headers["Proxy-Authorization"] = self._egress.authorization
            self.set_tunnel(host, port, headers)
            self.host, self.port = self._proxy_address(), self._egress.port
        super().connect()

    def _proxy_address(self) -> str:
        """A name is resolved for every new connection, so a proxy that moves is followed."""
        host, port = self._egress.host, self._egress.port
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(host))
        try:
            return str(usable(self.resolve_proxy(host, port)))
        except OSError:
            raise EgressProxyError("the egress proxy's host name does not resolve") from None

    def _new_conn(self):
        try:
            return super()._new_conn()
        except NewConnectionError as error:
            if self._egress is None:
                raise
            reason = getattr(error.__cause__, "strerror", None) or "connection failed"
            raise EgressProxyError(f"could not connect to the egress proxy: {reason}") from error

    def _tunnel(self):
        """A proxy that has not answered by the attempt's deadline fails here too; the
        client classifies any failure once that time has passed as a timeout."""
        try:
            super()._tunnel()
        except (OSError, HTTPException) as error:  # a status other than 200, a hang-up
            raise EgressProxyError(f"the egress proxy opened no tunnel to "
                                   f"{authority(*self._checked)}: {error}") from error

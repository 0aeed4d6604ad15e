"""Origins a tenant allows to frame its portal, written as CSP `frame-ancestors` sources.

An origin is `scheme://host[:port]` and nothing else (no path, no wildcard, no
credentials), lowercase, without the scheme's default port: exactly what a browser's
`location.origin` says, and a source expression that cannot smuggle another directive into
the header (the characters are a closed set). `https` only, but `http` for loopback hosts
(localhost, 127.0.0.0/8, [::1]), which browsers treat as secure contexts and developers
embed from. The origin is never fetched, so it is matched here, not by the target-URL
parser of urls.py.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ORIGINS = 50
_ORIGIN = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)"
                     r"(?::(?P<port>[0-9]{1,5}))?$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class InvalidOriginError(ValueError):
    """Not an origin the portal can be framed by; the message says why."""


def normalize_origin(value: str) -> str:
    """The origin as a browser writes it, or InvalidOriginError."""
    match = _ORIGIN.match(value.strip().lower())
    if not match:
        raise InvalidOriginError(
            "must be an origin: scheme://host[:port], without a path, e.g. "
            "https://app.example.com")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if scheme not in _DEFAULT_PORTS:
        raise InvalidOriginError("the scheme must be https (or http for localhost)")
    if not _valid_host(host):
        raise InvalidOriginError(f"{host!r} is not a host name or an IP address")
    if scheme == "http" and not _is_loopback(host):
        raise InvalidOriginError("http is allowed for localhost only; use https")
    if port is not None and not 1 <= int(port) <= 65535:
        raise InvalidOriginError("the port must be 1 to 65535")
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if all(label.isdigit() for label in labels):  # a browser reads it as IPv4 or not at all
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def frame_ancestors(origins: list[str]) -> str:
    """The CSP directive's value: the origins, or 'none' when there are none."""
    return " ".join(origins) if origins else "'none'"

"""The one parser of target URLs: the API's checks, the worker's HTTP client and the labels
shown to operators read a URL the same way.

A URL judged by one parser and fetched by another is a known way around an SSRF check (the
two can disagree on the host), so every place parses with urllib3's `parse_url`, the
parser the worker's connections are made with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidUrlError(ValueError):
    """The URL cannot be parsed (a bad port, a bad host, stray characters)."""


@dataclass(frozen=True)
class TargetUrl:
    """What a target URL says."""

    scheme: str | None  # lowercase
    host: str | None  # lowercase, IDNA-encoded, unbracketed
    port: int | None  # as written; `effective_port` fills in the scheme's default
    has_credentials: bool
    host_header: str  # host[:port] as the request's Host header carries it
    request_uri: str  # path?query, what the request line carries

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.scheme]

    @property
    def shown_host(self) -> str:
        """`host[:port]`, brackets around an IPv6 address: what an operator needs."""
        return self.host_header or "?"


@lru_cache(maxsize=1024)
def parse_target(url: str) -> TargetUrl:
    try:
        parts = parse_url(url)
    except LocationParseError as error:
        raise InvalidUrlError(str(error)) from None
    bracketed = parts.host
    host = bracketed.strip("[]") if bracketed else bracketed
    host_header = "" if not bracketed else (
        bracketed if parts.port is None else f"{bracketed}:{parts.port}")
    return TargetUrl(parts.scheme, host, parts.port, parts.auth is not None, host_header,
                     parts.request_uri)


def target_host(url: str) -> str:
    """`host[:port]` of a target URL: what an operator needs, nothing that may be secret
    (a URL's path or query may hold a token)."""
    try:
        return parse_target(url).shown_host
    except InvalidUrlError:
        return "?"

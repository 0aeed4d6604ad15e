"""A subscription's custom headers: which names the service reserves for its own headers
(webhooks_worker/delivery/headers.py builds those), and the limits checked when a
subscription is created or changed.

A header the worker cannot send (a name that is not an HTTP token, a value with CR, LF or
another control character, or outside ASCII) would fail every attempt, and CR/LF would
inject headers of the tenant's choosing; so each is refused up front with a message that
names the header (never echoes the value: it is often a credential). Sizes are bounded so
that one subscription cannot make every request it receives huge.
"""

from __future__ import annotations

import re

from webhooks_api.domain.custom_headers import mask_errors

# Every header the worker sets is one of these names or starts with one of these prefixes
# (X-Webhook-*, the Standard Webhooks webhook-*), so a custom header can never replace it.
# W3C Trace Context's two: `traceparent` (sent with WEBHOOKS_SEND_TRACEPARENT,
# webhooks_worker.runtime.tracing) names our span, and a `tracestate` of a subscription's
# would claim to belong to it.
RESERVED_HEADER_NAMES = frozenset({"content-type", "content-length", "host", "user-agent",
                                   "traceparent", "tracestate"})
RESERVED_HEADER_PREFIXES = ("x-webhook-", "webhook-")

MAX_CUSTOM_HEADERS = 20
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 4096
MAX_CUSTOM_HEADERS_BYTES = 8192

# RFC 9110 field-name: a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, space and tab inside; no leading or trailing whitespace.
_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?")


def header_limit_errors(headers: dict) -> list[str]:
    errors = []
    if len(headers) > MAX_CUSTOM_HEADERS:
        errors.append(f"at most {MAX_CUSTOM_HEADERS} custom headers ({len(headers)} given)")
    total_bytes = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            errors.append("header names and values must be strings")
            continue
        total_bytes += len(name) + len(value) + 4  # "name: value\r\n"
        shown = name[:64]
        if len(name) > MAX_HEADER_NAME_CHARS:
            errors.append(f"header name {shown!r}... is longer than {MAX_HEADER_NAME_CHARS}")
        elif not _TOKEN.fullmatch(name):
            errors.append(f"header name {shown!r} is not a valid HTTP header name")
        if len(value) > MAX_HEADER_VALUE_CHARS:
            errors.append(f"header {shown!r}: value longer than {MAX_HEADER_VALUE_CHARS}")
        elif not _VALUE.fullmatch(value):
            errors.append(f"header {shown!r}: value must be printable ASCII without control "
                          "characters or leading/trailing whitespace")
    if total_bytes > MAX_CUSTOM_HEADERS_BYTES:
        errors.append(f"custom headers total {total_bytes} bytes, more than "
                      f"{MAX_CUSTOM_HEADERS_BYTES}")
    return errors


def header_errors(headers: dict[str, str]) -> list[str]:
    """Everything wrong with a subscription's custom headers, each naming its header."""
    return [
        f"header {name!r} is set by the service and cannot be overridden"
        for name in headers
        if name.lower() in RESERVED_HEADER_NAMES
        or name.lower().startswith(RESERVED_HEADER_PREFIXES)
    ] + header_limit_errors(headers) + mask_errors(headers)

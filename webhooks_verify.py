"""Verify our webhooks on the receiving side: one file, standard library only (Flask only
for the optional decorator), so a receiver can install the package or copy this file.

Checks the Standard Webhooks headers every delivery carries:

    webhook-id:        evt_...   (the same on every attempt: deduplicate on it)
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")> [...]

`key` is the base64-decoded part of the subscription's secret (`whsec_<base64>`), not the
secret string. During a secret rotation the header carries several signatures (new key
first); any one that matches any of the given secrets passes. The timestamp must be
within `tolerance` seconds of now in either direction, so a captured request cannot be
replayed later.

    from webhooks_verify import verify, WebhookVerificationError

    event = verify(secret, request.headers, request.get_data())  # raises when forged
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = ["WebhookVerificationError", "require_signature", "signing_key", "verify"]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300

Secrets = str | Iterable[str]


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh delivery signed with one of the secrets."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret: its base64 part, decoded."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing {name} header")


def _signatures(header: str) -> list[bytes]:
    """The v1 signatures of a `webhook-signature` header (other versions are skipped)."""
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(secret: Secrets, headers: Mapping[str, str], body: bytes | str,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, *, now: float | None = None) -> dict:
    """Return the delivered event (parsed JSON) or raise WebhookVerificationError.

    `secret` is one `whsec_...` secret or several (a receiver rotating on its side);
    `body` must be the raw request body, byte for byte, not re-serialized JSON.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise WebhookVerificationError("no secret to verify with")
    body_bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    webhook_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not unix seconds") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp is in the future")
    signatures = _signatures(_header(headers, "webhook-signature"))
    signed = f"{webhook_id}.{timestamp_text}.".encode() + body_bytes
    for candidate in secrets:
        expected = hmac.new(signing_key(candidate), signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            try:
                return json.loads(body_bytes)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches")


def require_signature(secret: Secrets | Callable[[], Secrets],
                      tolerance: int = DEFAULT_TOLERANCE_SECONDS):
    """Flask view decorator: answers 400 to a request that does not verify; otherwise the
    view runs with the verified event in `flask.g.webhook_event`.

    `secret` may be a callable, to read the secret(s) from your config at request time.
    """

    def decorate(view):
        @functools.wraps(view)
        def verified_view(*args, **kwargs):
            from flask import g, jsonify, request

            secrets = secret() if callable(secret) else secret
            try:
                g.webhook_event = verify(secrets, request.headers, request.get_data(),
                                         tolerance)
            except WebhookVerificationError as error:
                return jsonify({"error": str(error)}), 400
            return view(*args, **kwargs)

        return verified_view

    return decorate

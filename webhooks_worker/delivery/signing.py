"""Signature headers of DESIGN.md; pure functions, no I/O.

Two families: `X-Webhook-Signature` (hex HMAC-SHA256 of the raw body) and Standard
Webhooks' `webhook-signature` (`v1,` + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}").
Both use the decoded key of a `whsec_` secret. During a rotation grace period each header
carries the signature with the new key first and the previous key second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from webhooks_api.domain.secrets import signing_key

SIGNATURE_HEADERS = ("X-Webhook-Signature", "webhook-signature")


def hex_signature(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(secrets: list[str], message_id: str, timestamp: int,
                      body: bytes) -> dict[str, str]:
    """Both header families for `secrets`, newest first."""
    keys = [signing_key(secret) for secret in secrets]
    return {
        "X-Webhook-Signature": ",".join(hex_signature(key, body) for key in keys),
        "webhook-signature": " ".join(
            standard_signature(key, message_id, timestamp, body) for key in keys
        ),
    }


def redact_signatures(headers: dict[str, str]) -> dict[str, str]:
    """Headers as stored in the attempt log: signature values never leave the process."""
    return {
        name: ("[redacted]" if name in SIGNATURE_HEADERS else value)
        for name, value in headers.items()
    }

"""The headers of a delivery's POST (DESIGN.md "Delivery headers"): ours, the Standard
Webhooks signature headers, and the subscription's own.

Every header set here has a name webhooks_api.domain.headers reserves (an exact name or
the `X-Webhook-` / `webhook-` prefixes), so a subscription can never replace one: add a
header here, and reserve its name there if no prefix covers it.
"""

from __future__ import annotations

import time
from functools import cache

from webhooks_api.config import Settings
from webhooks_api.domain.custom_headers import decrypt_headers
from webhooks_api.domain.secrets import SecretBox
from webhooks_worker.delivery import http_client
from webhooks_worker.delivery.signing import signature_headers


@cache
def _secret_box(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)


def build_headers(claim, delivery_id: str, attempt_number: int, settings: Settings,
                  body: bytes) -> dict[str, str]:
    """DESIGN.md's headers. The subscription's own headers come first, so that ours win
    even if a reserved name slipped past validation; their values, like the secrets, exist
    in clear only here, in memory."""
    box = _secret_box(settings.encryption_keys)
    secrets = [box.decrypt(claim.secret_ciphertext)]
    if claim.previous_secret_ciphertext:
        secrets.append(box.decrypt(claim.previous_secret_ciphertext))
    timestamp = int(time.time())
    return {
        **decrypt_headers(box, claim.header_ciphertexts),
        "Content-Type": "application/json",
        "User-Agent": http_client.user_agent(),
        "X-Webhook-Event-Id": claim.event_id,
        "X-Webhook-Event-Type": claim.event_type,
        "X-Webhook-Timestamp": claim.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "X-Webhook-Delivery-Id": delivery_id,
        "X-Webhook-Attempt": str(attempt_number),
        "webhook-id": claim.event_id,
        "webhook-timestamp": str(timestamp),
        **signature_headers(secrets, claim.event_id, timestamp, body),
    }

"""The raw-HTTP ceiling: one `requests.Session` posting the same deliveries in a loop.

Same number of POSTs, same ~1 KB bodies, the same headers as a delivery (both signature
families computed per request), to the same receiver URLs. No database, no broker: what one
Python process with keep-alive can push, measured in the same run as the stack.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import requests

from bench.workload import EVENT_TYPE, event_data
from webhooks_api.domain.secrets import new_signing_secret
from webhooks_api.services.events import serialize_body
from webhooks_worker.delivery.signing import signature_headers


def run_ceiling(urls: list[str], count: int) -> dict:
    """POST `count` deliveries round-robin over `urls`; returns requests per second."""
    secret = new_signing_secret()
    session = requests.Session()
    session.trust_env = False
    occurred_at = datetime.now(UTC)
    failures = 0
    start = time.perf_counter()
    for seq in range(count):
        event_id = f"evt_ceiling_{seq:07d}"
        body = serialize_body(event_id, EVENT_TYPE, occurred_at, "bench_ceiling",
                              event_data(seq), None).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "webhooks-service/bench",
            "X-Webhook-Event-Id": event_id,
            "X-Webhook-Event-Type": EVENT_TYPE,
            "X-Webhook-Timestamp": occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "X-Webhook-Delivery-Id": f"dlv_ceiling_{seq:07d}",
            "X-Webhook-Attempt": "1",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            **signature_headers([secret], event_id, timestamp, body),
        }
        response = session.post(urls[seq % len(urls)], data=body, headers=headers,
                                timeout=30, allow_redirects=False)
        failures += not response.ok
    elapsed = time.perf_counter() - start
    session.close()
    return {"requests": count, "seconds": round(elapsed, 3),
            "per_s": round(count / elapsed, 1), "failures": failures,
            "body_bytes": len(body)}

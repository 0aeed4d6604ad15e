"""Shared helpers of the API tests: requests, seeded rows, assertions on the error shape."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import insert

from webhooks_api.domain.ids import new_id
from webhooks_api.domain.models import Delivery, DeliveryAttempt
from webhooks_api.services.events import store_event

API = "/api/v1/webhooks"
# A target that passes the URL rules of the test settings; nothing is ever sent to it.
QUIET_URL = "http://127.0.0.1:9/hook"


HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def documented_operations(spec: dict) -> dict[tuple[str, str], dict]:
    """{(METHOD, path): operation} of an OpenAPI document."""
    return {(method.upper(), path): operation for path, item in spec["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


def create_subscription(client, tenant, **fields) -> dict:
    body = {"url": QUIET_URL, "event_types": ["invoice.*"], **fields}
    response = client.post(f"{API}/subscriptions", headers=tenant["headers"], json=body)
    assert response.status_code == 201, response.json
    return response.json


def assert_error(response, code: int, field: str | None = None) -> dict:
    """The documented error shape, with a message, and a message for `field` if given."""
    body = response.json
    assert response.status_code == code, body
    assert set(body) <= {"code", "status", "message", "errors", "error_code"}, body
    assert body["code"] == code and body["status"] and body["message"], body
    if field is not None:
        assert body.get("errors", {}).get(field), body
    return body


def seed_deliveries(session, tenant_id: str, subscription_id: str, count: int = 1, *,
                    status: str = "failed", event_type: str = "invoice.created",
                    attempts: int = 0, data: list[dict] | None = None,
                    metadata: list[dict | None] | None = None) -> list[str]:
    """Deliveries in the given state, written in one transaction (so they share
    created_at), each for its own stored event, with `attempts` failed attempt rows.
    The events carry `data` and `metadata` (one each per delivery; then `count` is their
    number), else `{"n": <its index>}` and none.

    For read and state-change tests that must not depend on a worker's timing."""
    settings = current_app.config["WEBHOOKS_SETTINGS"]
    data = data or [{"n": n} for n in range(count)]
    metadata = metadata or [None] * len(data)
    events = [store_event(session, settings, tenant_id, event_type, event_data,
                          event_metadata).event
              for event_data, event_metadata in zip(data, metadata, strict=True)]
    session.flush()
    rows = [{"id": new_id("dlv"), "event_pk": event.id, "subscription_id": subscription_id,
             "tenant_id": tenant_id, "event_type": event_type, "status": status,
             "attempt_count": attempts} for event in events]
    session.execute(insert(Delivery), rows)
    attempt_rows = [
        {"delivery_id": row["id"], "attempt_number": number, "trigger": "automatic",
         "started_at": events[0].occurred_at, "duration_ms": 12,
         "request_headers": {"X-Webhook-Signature": "[redacted]"}, "response_status": 500,
         "response_headers": {"Content-Type": "text/plain"}, "response_body": "oops"}
        for row in rows for number in range(1, attempts + 1)
    ]
    if attempt_rows:
        session.execute(insert(DeliveryAttempt), attempt_rows)
    session.commit()
    return [row["id"] for row in rows]

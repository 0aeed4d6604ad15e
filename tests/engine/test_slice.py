"""The first vertical slice: CLI → API → publish (API and publish.delay) → worker → receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from standardwebhooks.webhooks import Webhook

from tests.support.helpers import wait_for
from webhooks_api.domain.models import Delivery, DeliveryAttempt


def test_one_signed_delivery_end_to_end(app, client, tenant, receiver, worker, session):
    created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"], json={
        "url": receiver.url, "event_types": ["invoice.*"], "description": "billing",
    })
    assert created.status_code == 201, created.json
    subscription = created.json
    secret = subscription["secret"]
    assert secret.startswith("whsec_") and subscription["status"] == "active"

    published = client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_1", "amount": 4200},
        "metadata": {"source": "api"},
    })
    assert published.status_code == 202, published.json
    api_event_id = published.json["event_id"]

    from webhooks_worker.tasks import publish

    with app.app_context():
        publish.delay("invoice.paid", {"invoice_id": "inv_1"}, tenant["id"],
                      metadata={"source": "delay"}, event_id="evt_from_delay_1")

    wait_for(lambda: len(receiver.requests) == 2, timeout=30, message="two deliveries")
    by_type = {json.loads(r.body)["type"]: r for r in receiver.requests}
    assert set(by_type) == {"invoice.created", "invoice.paid"}

    verifier = Webhook(secret)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    for event_type, request in by_type.items():
        body = json.loads(request.body)
        assert set(body) == {"id", "type", "timestamp", "tenant_id", "data", "metadata"}
        assert body["type"] == event_type and body["tenant_id"] == tenant["id"]
        headers = {name.lower(): value for name, value in request.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("webhooks-service/")
        assert headers["x-webhook-event-id"] == body["id"] == headers["webhook-id"]
        assert headers["x-webhook-event-type"] == event_type
        assert headers["x-webhook-timestamp"] == body["timestamp"]
        assert headers["x-webhook-delivery-id"].startswith("dlv_")
        assert headers["x-webhook-attempt"] == "1"
        expected = hmac.new(key, request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-webhook-signature"], expected)
        assert verifier.verify(request.body, headers)["id"] == body["id"]

    assert json.loads(by_type["invoice.created"].body)["id"] == api_event_id
    assert json.loads(by_type["invoice.created"].body)["data"] == {
        "invoice_id": "inv_1", "amount": 4200}
    assert json.loads(by_type["invoice.paid"].body)["id"] == "evt_from_delay_1"

    def all_recorded():
        session.expire_all()
        deliveries = session.query(Delivery).all()
        return len(deliveries) == 2 and all(d.status == "success" for d in deliveries)

    wait_for(all_recorded, timeout=15, message="both deliveries stored as success")
    attempts = session.query(DeliveryAttempt).all()
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt.attempt_number == 1 and attempt.trigger == "automatic"
        assert attempt.response_status == 200
        assert attempt.request_headers["X-Webhook-Signature"] == "[redacted]"
        assert attempt.request_headers["webhook-signature"] == "[redacted]"

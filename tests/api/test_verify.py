"""webhooks_verify, the receiver-side helper: Standard Webhooks' own vectors, real signed
deliveries, and the Flask decorator in a real receiver app."""

from __future__ import annotations

import base64
import threading

import pytest
import requests
from flask import Flask, g
from werkzeug.serving import make_server

from tests.support.helpers import wait_for
from webhooks_verify import WebhookVerificationError, require_signature, signing_key, verify

# From the standardwebhooks library's tests (test_sign_function).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SIGNATURE = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def vector_headers(**changes: str) -> dict[str, str]:
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP),
               "webhook-signature": VECTOR_SIGNATURE}
    headers.update(changes)
    return {name: value for name, value in headers.items() if value is not None}


def test_standard_webhooks_vector_verifies_with_or_without_prefix():
    for secret in (VECTOR_SECRET, VECTOR_SECRET.removeprefix("whsec_")):
        event = verify(secret, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)
        assert event == {"test": 2432232314}


def test_any_of_several_signatures_and_any_of_several_secrets_passes():
    several = " ".join(["v1," + OTHER_SIGNATURE[3:], "v2,anything", VECTOR_SIGNATURE])
    headers = vector_headers(**{"webhook-signature": several})
    assert verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    other_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert verify([other_secret, VECTOR_SECRET], headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


@pytest.mark.parametrize("headers, body, now, reason", [
    (vector_headers(), VECTOR_BODY.replace("2", "3"), VECTOR_TIMESTAMP, "no signature"),
    (vector_headers(**{"webhook-signature": OTHER_SIGNATURE}), VECTOR_BODY, VECTOR_TIMESTAMP,
     "no signature"),
    (vector_headers(**{"webhook-id": "msg_other"}), VECTOR_BODY, VECTOR_TIMESTAMP,
     "no signature"),
    (vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP + 301, "too old"),
    (vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP - 301, "future"),
    (vector_headers(**{"webhook-timestamp": "hello"}), VECTOR_BODY, VECTOR_TIMESTAMP,
     "unix seconds"),
    (vector_headers(**{"webhook-id": None}), VECTOR_BODY, VECTOR_TIMESTAMP, "webhook-id"),
    (vector_headers(**{"webhook-timestamp": None}), VECTOR_BODY, VECTOR_TIMESTAMP,
     "webhook-timestamp"),
    (vector_headers(**{"webhook-signature": None}), VECTOR_BODY, VECTOR_TIMESTAMP,
     "webhook-signature"),
])
def test_forged_stale_future_or_incomplete_requests_are_rejected(headers, body, now, reason):
    with pytest.raises(WebhookVerificationError, match=reason):
        verify(VECTOR_SECRET, headers, body, now=now)


def test_tolerance_is_inclusive_and_configurable():
    assert verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 300)
    with pytest.raises(WebhookVerificationError):
        verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, tolerance=10,
               now=VECTOR_TIMESTAMP + 11)


def test_signing_key_is_the_decoded_base64_part():
    assert signing_key(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    with pytest.raises(WebhookVerificationError):
        signing_key("whsec_not base64!")


def _subscribe(client, tenant, url: str) -> str:
    created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"],
                          json={"url": url, "event_types": ["invoice.*"]})
    assert created.status_code == 201, created.json
    return created.json["secret"]


def _publish(client, tenant) -> str:
    published = client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_v"}})
    return published.json["event_id"]


def test_real_deliveries_verify_and_tampering_does_not(client, tenant, receiver, worker):
    secret = _subscribe(client, tenant, receiver.url)
    event_id = _publish(client, tenant)
    wait_for(lambda: receiver.requests, timeout=30, message="the delivery")
    request = receiver.requests[0]
    assert verify(secret, request.headers, request.body)["id"] == event_id
    with pytest.raises(WebhookVerificationError):
        verify(secret, request.headers, request.body.replace(b"inv_v", b"inv_w"))
    wrong = "whsec_" + base64.b64encode(b"w" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        verify(wrong, request.headers, request.body)


def test_flask_decorator_accepts_deliveries_and_refuses_forgeries(client, tenant, worker):
    received = []
    secrets: list[str] = []
    receiver_app = Flask("receiver")

    @receiver_app.post("/webhooks")
    @require_signature(lambda: secrets)
    def webhooks():
        received.append(g.webhook_event)
        return "", 204

    server = make_server("127.0.0.1", 0, receiver_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks"
    try:
        secrets.append(_subscribe(client, tenant, url))
        event_id = _publish(client, tenant)
        wait_for(lambda: received, timeout=30, message="the verified delivery")
        assert received[0]["id"] == event_id and received[0]["data"] == {"invoice_id": "inv_v"}

        forged = requests.post(url, data=b'{"id": "evt_forged"}', timeout=10, headers={
            "webhook-id": "evt_forged", "webhook-timestamp": "1",
            "webhook-signature": OTHER_SIGNATURE})
        assert forged.status_code == 400 and "too old" in forged.json()["error"]
        assert len(received) == 1
    finally:
        server.shutdown()

"""Limits: event payload size (413), custom header names, values, count and total size
(422), and the stored excerpt of a receiver's answer (4 KiB, however big the answer)."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from sqlalchemy import func, select

from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.config import DEVELOPMENT_ENCRYPTION_KEY
from webhooks_api.domain.custom_headers import decrypt_headers
from webhooks_api.domain.models import DeliveryAttempt, Event, Subscription
from webhooks_api.domain.secrets import SecretBox

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"
PUBLISH = "/api/v1/webhooks/publish"


@pytest.mark.parametrize("data_bytes", [262144, 262144 + 20000])
def test_payload_over_the_limit_is_413_and_stores_nothing(client, tenant, session,
                                                          data_bytes):
    """Just over WEBHOOKS_MAX_PAYLOAD_BYTES (the service's check) and far over it (the
    request size cap in front of it): the same JSON error shape either way."""
    response = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"blob": "x" * data_bytes}})
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert response.json["code"] == 413
    assert response.json["status"] == HTTPStatus(413).phrase
    assert response.json["message"]
    assert session.scalar(select(func.count()).select_from(Event)) == 0


_MANY = {f"X-Custom-{n}": "v" for n in range(21)}
_BIG = {f"X-Big-{n}": "v" * 4000 for n in range(3)}


@pytest.mark.parametrize("headers, message", [
    (_MANY, "at most 20 custom headers (21 given)"),
    (_BIG, "custom headers total 12033 bytes, more than 8192"),
    ({"X-Bad Name": "v"}, "header name 'X-Bad Name' is not a valid HTTP header name"),
    ({"X-Bad:Name": "v"}, "header name 'X-Bad:Name' is not a valid HTTP header name"),
    ({"X-Token": "a\r\nX-Injected: 1"}, "header 'X-Token': value must be printable ASCII"),
    ({"X-Token": "a\nb"}, "header 'X-Token': value must be printable ASCII"),
    ({"X-Token": " padded"}, "header 'X-Token': value must be printable ASCII"),
    ({"X-Token": "café"}, "header 'X-Token': value must be printable ASCII"),
    ({"Host": "internal"}, "header 'Host' is set by the service"),
    ({"webhook-signature": "v1,x"}, "header 'webhook-signature' is set by the service"),
    ({"Traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
     "header 'Traceparent' is set by the service"),
])
def test_custom_header_limits(client, tenant, session, headers, message):
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": "https://127.0.0.1:9/hook", "event_types": ["invoice.created"],
        "headers": headers})
    assert response.status_code == 422, response.json
    assert any(m.startswith(message) for m in response.json["errors"]["headers"]), \
        response.json
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0


@pytest.mark.parametrize("headers", [
    {"X" * 257: "v"}, {"X-Value": "v" * 4097}, {"": "v"}, {"X-Token": "a\x00b"},
])
def test_header_name_and_value_lengths(client, tenant, headers):
    """Refused by the request schema (empty name, NUL) or the header rules (lengths)."""
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": "https://127.0.0.1:9/hook", "event_types": ["invoice.created"],
        "headers": headers})
    assert response.status_code == 422, response.json
    assert "headers" in response.json["errors"]
    assert "a\\u0000b" not in response.get_data(as_text=True)  # the value is not echoed


def test_headers_at_the_limits_are_accepted(client, tenant, session):
    headers = {f"X-Custom-{n}": "v" * 300 for n in range(20)}
    headers["Authorization"] = "Bearer abc.def-ghi_jkl~mno+/="
    headers.pop("X-Custom-0")
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": "https://127.0.0.1:9/hook", "event_types": ["invoice.created"],
        "headers": headers})
    assert response.status_code == 201, response.json
    assert response.json["headers"] == dict.fromkeys(headers, "[redacted]")
    stored = session.get(Subscription, response.json["id"]).header_ciphertexts
    assert decrypt_headers(SecretBox((DEVELOPMENT_ENCRYPTION_KEY,)), stored) == headers


def test_stored_response_excerpt_is_bounded(client, tenant, receiver, worker, session):
    answer = b"<start>" + b"y" * (1024 * 1024)
    receiver.respond = lambda request: Reply(200, answer)
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": receiver.url, "event_types": ["invoice.created"]})
    assert created.status_code == 201
    published = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {}})
    assert published.status_code == 202

    def attempt():
        session.expire_all()
        return session.scalars(select(DeliveryAttempt)).first()

    recorded = wait_for(attempt, timeout=30, message="the attempt")
    assert recorded.response_status == 200
    assert recorded.response_body == answer[:4096].decode()

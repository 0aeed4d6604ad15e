"""POST /publish: stored then enqueued, idempotent by key, nothing stored on bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.support.api_support import API, assert_error
from webhooks_api.domain.models import Event

PUBLISH = f"{API}/publish"


def count_events(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Event))


def test_publish_stores_the_event_and_answers_202(client, tenant, session):
    response = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_1"},
        "metadata": {"source": "test"}})
    assert response.status_code == 202
    body = response.json
    assert body["event_id"].startswith("evt_") and body["created"] is True
    assert body["event_type"] == "invoice.created"
    event = session.scalar(select(Event))
    assert event.event_id == body["event_id"] and event.tenant_id == tenant["id"]
    stored = json.loads(event.body)
    assert stored["data"] == {"invoice_id": "inv_1"} and stored["metadata"] == {"source": "test"}


def test_idempotency_key_repeat_creates_nothing_new(client, tenant, other_tenant, session):
    headers = {**tenant["headers"], "Idempotency-Key": "order-42_v1"}
    first = client.post(PUBLISH, headers=headers, json={
        "event_type": "invoice.created", "data": {"n": 1}})
    again = client.post(PUBLISH, headers=headers, json={
        "event_type": "invoice.created", "data": {"n": 2}})
    assert first.status_code == again.status_code == 202
    assert first.json["event_id"] == again.json["event_id"] == "order-42_v1"
    assert (first.json["created"], again.json["created"]) == (True, False)
    assert count_events(session) == 1
    assert json.loads(session.scalar(select(Event.body)))["data"] == {"n": 1}
    other = client.post(PUBLISH, headers={**other_tenant["headers"],
                                          "Idempotency-Key": "order-42_v1"},
                        json={"event_type": "invoice.created", "data": {}})
    assert other.json["created"] is True, "keys are unique per tenant"


@pytest.mark.parametrize("key", ["has space", "x" * 129, "semi;colon", "é"])
def test_malformed_idempotency_keys_are_refused(client, tenant, session, key):
    response = client.post(PUBLISH, headers={**tenant["headers"], "Idempotency-Key": key},
                           json={"event_type": "invoice.created", "data": {}})
    assert_error(response, 422, "Idempotency-Key")
    assert count_events(session) == 0


@pytest.mark.parametrize("body, field", [
    ({"event_type": "no.such_type", "data": {}}, "event_type"),
    ({"event_type": "Invoice Created", "data": {}}, "event_type"),
    ({"event_type": "invoice.created"}, "data"),
    ({"event_type": "invoice.created", "data": [1]}, "data"),
    ({"event_type": "invoice.created", "data": "text"}, "data"),
    ({"event_type": "invoice.created", "data": {"a": "\ud800"}}, "data"),
    ({"event_type": "invoice.created", "data": {}, "metadata": 3}, "metadata"),
    ({"event_type": "invoice.created", "data": {}, "extra": 1}, "extra"),
    ({"data": {}}, "event_type"),
])
def test_bad_input_is_422_and_stores_nothing(client, tenant, session, body, field):
    assert_error(client.post(PUBLISH, headers=tenant["headers"], json=body), 422, field)
    assert count_events(session) == 0


def test_payload_over_the_limit_is_413_and_stores_nothing(client, tenant, session, app):
    limit = app.config["WEBHOOKS_SETTINGS"].max_payload_bytes
    just_over = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"blob": "x" * limit}})
    assert_error(just_over, 413)
    far_over = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"blob": "x" * (2 * limit)}})
    assert_error(far_over, 413)
    assert count_events(session) == 0
    under = client.post(PUBLISH, headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"blob": "x" * (limit - 1024)}})
    assert under.status_code == 202


def test_malformed_and_non_json_bodies(client, tenant, session):
    malformed = client.post(PUBLISH, data=b"{nope", content_type="application/json",
                            headers=tenant["headers"])
    assert_error(malformed, 400)
    form = client.post(PUBLISH, data=b"event_type=invoice.created", headers=tenant["headers"],
                       content_type="text/plain")
    assert_error(form, 415)
    assert count_events(session) == 0

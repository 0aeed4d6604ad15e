"""Custom header values (often the receiver's credential): encrypted at rest like the
signing secret, shown by the API only as names with masked values, redacted in the
attempt log; PATCH replaces them whole and refuses the mask as a value."""

from __future__ import annotations

import json
import uuid

from cryptography.fernet import Fernet
from sqlalchemy import text

from tests.support.engine_support import create_subscription, publish_via_api, wait_for_delivery
from tests.support.helpers import wait_for
from webhooks_api.config import DEVELOPMENT_ENCRYPTION_KEY
from webhooks_api.domain.custom_headers import MASK

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"
TABLES = ("tenants", "api_keys", "subscriptions", "events", "deliveries", "delivery_attempts")


def _raw(session, sql: str, **params):
    """One raw column value as PostgreSQL returns it, not through the model."""
    session.expire_all()
    value = session.execute(text(sql), params).scalar_one()
    session.commit()
    return value


def _database_text(session) -> str:
    """Every row of every table, as text."""
    rows = [str(row) for table in TABLES
            for row in session.execute(text(f"SELECT * FROM {table}"))]
    session.commit()
    return "\n".join(rows)


def test_header_values_are_encrypted_at_rest_masked_and_redacted(client, tenant, receiver,
                                                                worker, session):
    token = f"Bearer tok-{uuid.uuid4().hex}"
    team = f"team-{uuid.uuid4().hex}"
    created = create_subscription(client, tenant, receiver.url, ["invoice.created"],
                                  headers={"Authorization": token, "X-Team": team})
    masked = {"Authorization": MASK, "X-Team": MASK}
    assert created["headers"] == masked

    shown = [client.get(f"{SUBSCRIPTIONS}/{created['id']}", headers=tenant["headers"]),
             client.get(SUBSCRIPTIONS, headers=tenant["headers"])]
    assert shown[0].json["headers"] == masked
    assert [item["headers"] for item in shown[1].json["items"]] == [masked]
    assert not any(token in answer.get_data(as_text=True) for answer in shown)

    publish_via_api(client, tenant, "invoice.created", {"invoice_id": "inv_1"})
    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    [request] = receiver.posts()
    assert (request.headers["Authorization"], request.headers["X-Team"]) == (token, team)

    # subscriptions: each value a Fernet ciphertext under WEBHOOKS_ENCRYPTION_KEY.
    ciphertexts = _raw(session, "SELECT header_ciphertexts FROM subscriptions WHERE id = :id",
                       id=created["id"])
    fernet = Fernet(DEVELOPMENT_ENCRYPTION_KEY.encode())
    assert {name: fernet.decrypt(value.encode()).decode()
            for name, value in ciphertexts.items()} == {"Authorization": token, "X-Team": team}

    # delivery_attempts: the names as sent, the values redacted like the signatures.
    stored = json.loads(_raw(
        session, "SELECT request_headers::text FROM delivery_attempts WHERE delivery_id = :id",
        id=delivery.id))
    assert {name: stored[name] for name in ("Authorization", "X-Team", "X-Webhook-Signature",
                                            "webhook-signature")} == dict.fromkeys(
        ("Authorization", "X-Team", "X-Webhook-Signature", "webhook-signature"), MASK)
    assert stored["X-Webhook-Delivery-Id"] == delivery.id
    detail = client.get(f"/api/v1/webhooks/deliveries/{delivery.id}", headers=tenant["headers"])
    assert detail.json["attempts"][0]["request_headers"] == stored

    everything = _database_text(session)
    assert token.split()[1] not in everything and team not in everything


def test_patch_replaces_headers_whole_and_refuses_the_mask(client, tenant, receiver, worker,
                                                           session):
    created = create_subscription(client, tenant, receiver.url, ["invoice.created"],
                                  headers={"Authorization": "Bearer one", "X-Old": "old"})
    path = f"{SUBSCRIPTIONS}/{created['id']}"
    before = _raw(session, "SELECT header_ciphertexts::text FROM subscriptions WHERE id = :id",
                  id=created["id"])

    # What a GET showed, sent back as is; or one real value beside a masked one.
    read_back = client.get(path, headers=tenant["headers"]).json["headers"]
    for headers in (read_back, {"Authorization": MASK, "X-New": "new"}):
        answer = client.patch(path, headers=tenant["headers"], json={
            "headers": headers, "description": "changed"})
        assert answer.status_code == 422, answer.json
        [message] = [m for m in answer.json["errors"]["headers"] if "'Authorization'" in m]
        assert MASK in message and "real value" in message
    refused = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": receiver.url, "event_types": ["invoice.created"], "headers": {"X-Key": MASK}})
    assert refused.status_code == 422 and "'X-Key'" in refused.json["errors"]["headers"][0]
    after = _raw(session, "SELECT header_ciphertexts::text FROM subscriptions WHERE id = :id",
                 id=created["id"])
    assert after == before
    assert client.get(path, headers=tenant["headers"]).json["description"] is None

    replaced = client.patch(path, headers=tenant["headers"],
                            json={"headers": {"Authorization": "Bearer two"}})
    assert replaced.status_code == 200 and replaced.json["headers"] == {"Authorization": MASK}
    publish_via_api(client, tenant, "invoice.created", {"invoice_id": "inv_2"})
    wait_for(lambda: receiver.posts(), timeout=30, message="the delivery")
    [request] = receiver.posts()
    assert request.headers["Authorization"] == "Bearer two" and "X-Old" not in request.headers

"""Deliveries: the tenant's list with filters, one delivery with its attempts, manual
re-send (end to end with the real worker and receiver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.support.api_support import API, assert_error, create_subscription, seed_deliveries
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.domain.models import Delivery, DeliveryAttempt, Subscription


def test_list_filters_by_status_type_subscription_and_window(client, tenant, session):
    first = create_subscription(client, tenant, event_types=["*"])
    second = create_subscription(client, tenant, event_types=["*"])
    failed = seed_deliveries(session, tenant["id"], first["id"], 2, status="failed")
    paid = seed_deliveries(session, tenant["id"], second["id"], 1, status="success",
                           event_type="invoice.paid")
    listing, headers = f"{API}/deliveries", tenant["headers"]

    def ids(**query):
        response = client.get(listing, query_string=query, headers=headers)
        assert response.status_code == 200, response.json
        return [d["id"] for d in response.json["items"]]

    assert set(ids()) == set(failed + paid)
    assert ids()[0] == paid[0], "newest first"
    assert set(ids(status="failed")) == set(failed)
    assert ids(event_type="invoice.paid") == paid
    assert set(ids(subscription_id=first["id"])) == set(failed)
    assert ids(status="success", subscription_id=first["id"]) == []
    now = datetime.now(UTC)
    assert set(ids(since=(now - timedelta(minutes=5)).isoformat())) == set(failed + paid)
    assert ids(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert ids(until=(now - timedelta(minutes=5)).isoformat()) == []
    assert set(ids(until=(now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"))) == \
        set(failed + paid), "a time without offset is UTC"


@pytest.mark.parametrize("query, field", [
    ({"status": "lost"}, "status"),
    ({"event_type": "Not A Type"}, "event_type"),
    ({"subscription_id": "sub_\x00"}, "subscription_id"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "until"),
    ({"limit": 0}, "limit"),
    ({"limit": 251}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "W10"}, "cursor"),  # base64 of "[]"
    ({"cursor": "WyJ4IiwgInkiXQ"}, "cursor"),  # ["x", "y"]
    ({"cursor": "\x00"}, "cursor"),
])
def test_list_refuses_bad_filters_and_cursors(client, tenant, query, field):
    response = client.get(f"{API}/deliveries", query_string=query, headers=tenant["headers"])
    assert_error(response, 422, field)


def test_one_delivery_with_its_attempts(client, tenant, session):
    subscription = create_subscription(client, tenant)
    (delivery_id,) = seed_deliveries(session, tenant["id"], subscription["id"], attempts=2)
    session.execute(update(DeliveryAttempt).where(DeliveryAttempt.attempt_number == 2).values(
        response_status=None, response_headers=None, response_body=None,
        error_class="timeout", error_message="no complete response within 30 s"))
    session.commit()
    response = client.get(f"{API}/deliveries/{delivery_id}", headers=tenant["headers"])
    assert response.status_code == 200
    body = response.json
    assert body["id"] == delivery_id and body["subscription_id"] == subscription["id"]
    assert body["event_id"].startswith("evt_") and body["event_type"] == "invoice.created"
    assert body["status"] == "failed" and body["attempt_count"] == 2
    first = body["attempts"][0]
    assert first["attempt_number"] == 1 and first["trigger"] == "automatic"
    assert first["duration_ms"] == 12 and first["started_at"]
    assert first["request_headers"] == {"X-Webhook-Signature": "[redacted]"}
    assert (first["response_status"], first["response_body"]) == (500, "oops")
    assert first["response_headers"] == {"Content-Type": "text/plain"}
    assert first["error"] is None
    second = body["attempts"][1]
    assert (second["response_status"], second["response_headers"]) == (None, None)
    assert second["error"] == {"error_class": "timeout",
                               "message": "no complete response within 30 s"}


def test_unknown_or_malformed_delivery_ids_are_404(client, tenant):
    for delivery_id in ("dlv_missing", "sub_x", "%00", "y" * 200):
        assert_error(client.get(f"{API}/deliveries/{delivery_id}",
                                headers=tenant["headers"]), 404)
        assert_error(client.post(f"{API}/deliveries/{delivery_id}/retry",
                                 headers=tenant["headers"]), 404)


@pytest.mark.parametrize("state", ["paused", "disabled", "deleted"])
def test_retry_answers_409_when_the_subscription_cannot_receive(client, tenant, session,
                                                                state):
    subscription = create_subscription(client, tenant)
    (delivery_id,) = seed_deliveries(session, tenant["id"], subscription["id"])
    values = {"deleted_at": datetime.now(UTC)} if state == "deleted" else {"status": state}
    session.execute(update(Subscription).where(Subscription.id == subscription["id"])
                    .values(**values))
    session.commit()
    body = assert_error(client.post(f"{API}/deliveries/{delivery_id}/retry",
                                    headers=tenant["headers"]), 409)
    assert state in body["message"]
    session.expire_all()
    delivery = session.get(Delivery, delivery_id)
    assert (delivery.status, delivery.manual_pending) == ("failed", False)


def test_retry_answers_409_while_an_attempt_is_in_flight(client, tenant, session):
    subscription = create_subscription(client, tenant)
    (delivery_id,) = seed_deliveries(session, tenant["id"], subscription["id"],
                                     status="retrying")
    session.execute(update(Delivery).where(Delivery.id == delivery_id)
                    .values(claimed_until=datetime.now(UTC) + timedelta(minutes=1)))
    session.commit()
    assert_error(client.post(f"{API}/deliveries/{delivery_id}/retry",
                             headers=tenant["headers"]), 409)


def test_manual_retry_of_a_failed_delivery_end_to_end(client, tenant, session, worker,
                                                      receiver):
    receiver.respond = lambda request: Reply(status=500, body=b"down")
    subscription = create_subscription(client, tenant, url=receiver.url,
                                       event_types=["invoice.created"])
    published = client.post(f"{API}/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_1"}})
    assert published.status_code == 202

    def delivery_finished():
        session.expire_all()
        delivery = session.scalar(select(Delivery).where(
            Delivery.subscription_id == subscription["id"]))
        return delivery if delivery and delivery.status == "failed" else None

    failed = wait_for(delivery_finished, timeout=60, message="four failed attempts")
    assert failed.attempt_count == 4 and len(receiver.requests) == 4

    receiver.respond = lambda request: Reply(status=200)
    response = client.post(f"{API}/deliveries/{failed.id}/retry", headers=tenant["headers"])
    assert response.status_code == 202, response.json
    assert response.json["id"] == failed.id and response.json["status"] == "pending"

    def succeeded():
        body = client.get(f"{API}/deliveries/{failed.id}", headers=tenant["headers"]).json
        return body if body["status"] == "success" else None

    body = wait_for(succeeded, timeout=30, message="the manual attempt to succeed")
    assert body["attempt_count"] == 5
    assert [a["trigger"] for a in body["attempts"]] == ["automatic"] * 4 + ["manual"]
    assert [a["response_status"] for a in body["attempts"]] == [500] * 4 + [200]
    assert [r.headers["X-Webhook-Attempt"] for r in receiver.requests] == \
        ["1", "2", "3", "4", "5"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    stats = client.get(f"{API}/subscriptions/{subscription['id']}",
                       headers=tenant["headers"]).json
    assert (stats["success_count"], stats["failure_count"]) == (1, 4)
    assert stats["consecutive_failures"] == 0 and stats["last_success_at"]


def test_manual_retry_that_fails_ends_failed_without_a_new_schedule(client, tenant, session,
                                                                    worker, receiver):
    receiver.respond = lambda request: Reply(status=503)
    subscription = create_subscription(client, tenant, url=receiver.url)
    (delivery_id,) = seed_deliveries(session, tenant["id"], subscription["id"],
                                     status="success", attempts=1)
    response = client.post(f"{API}/deliveries/{delivery_id}/retry", headers=tenant["headers"])
    assert response.status_code == 202

    def finished():
        body = client.get(f"{API}/deliveries/{delivery_id}", headers=tenant["headers"]).json
        return body if body["status"] != "pending" else None

    body = wait_for(finished, timeout=30, message="the manual attempt")
    assert body["status"] == "failed" and body["next_retry_at"] is None
    assert [a["trigger"] for a in body["attempts"]] == ["automatic", "manual"]
    assert receiver.requests[0].headers["X-Webhook-Attempt"] == "2"

    def searched(response_status: str) -> list[str]:
        response = client.get(f"{API}/deliveries", headers=tenant["headers"],
                              query_string={"response_status": response_status})
        return [delivery["id"] for delivery in response.json["items"]]

    # The status the worker stored for the last attempt is the one searched.
    assert searched("503") == searched("5xx") == [delivery_id]
    assert searched("500") == []

"""Subscriptions: create, list, read, PATCH, DELETE, rotate-secret, their deliveries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support.api_support import (
    API,
    QUIET_URL,
    assert_error,
    create_subscription,
    seed_deliveries,
)
from webhooks_api.domain.models import Delivery, Subscription
from webhooks_api.domain.secrets import SecretBox

STATISTICS = ("success_count", "failure_count", "consecutive_failures", "last_success_at",
              "last_failure_at")


@pytest.fixture
def strict_targets(app, monkeypatch):
    """The production URL rules: HTTPS only, no private or loopback targets."""
    settings = app.config["WEBHOOKS_SETTINGS"]
    monkeypatch.setitem(app.config, "WEBHOOKS_SETTINGS", dataclasses.replace(
        settings, require_https=True, allow_private_targets=False))


def test_create_answers_the_documented_shape_with_the_secret(client, tenant):
    response = client.post(f"{API}/subscriptions", headers=tenant["headers"], json={
        "url": QUIET_URL, "event_types": ["invoice.created", "payment.*", "invoice.created"],
        "description": "billing", "timeout_seconds": 10, "headers": {"X-Team": "billing"},
        "metadata": {"owner": "ops"},
    })
    assert response.status_code == 201
    body = response.json
    assert body["id"].startswith("sub_") and body["secret"].startswith("whsec_")
    assert body["event_types"] == ["invoice.created", "payment.*"]
    assert (body["status"], body["is_active"], body["disabled_reason"]) == ("active", True, None)
    assert body["timeout_seconds"] == 10 and body["headers"] == {"X-Team": "[redacted]"}
    assert body["metadata"] == {"owner": "ops"} and body["description"] == "billing"
    assert {name: body[name] for name in STATISTICS} == {
        "success_count": 0, "failure_count": 0, "consecutive_failures": 0,
        "last_success_at": None, "last_failure_at": None}
    assert body["created_at"] and body["updated_at"]


def test_create_defaults_and_paused_creation(client, tenant):
    body = create_subscription(client, tenant)
    assert body["timeout_seconds"] == 30 and body["headers"] == {} and body["metadata"] == {}
    paused = create_subscription(client, tenant, is_active=False)
    assert (paused["status"], paused["is_active"]) == ("paused", False)


@pytest.mark.parametrize("fields, field", [
    ({"url": None}, "url"),
    ({"url": ""}, "url"),
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "http:///no-host"}, "url"),
    ({"url": "http://user:pw@127.0.0.1/hook"}, "url"),
    ({"url": "http://127.0.0.1/a b"}, "url"),
    ({"url": "http://127.0.0.1/\x00"}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["no.such_type"]}, "event_types"),
    ({"event_types": ["invoice"]}, "event_types"),
    ({"event_types": ["Invoice.Created"]}, "event_types"),
    ({"event_types": "invoice.created"}, "event_types"),
    ({"timeout_seconds": 4}, "timeout_seconds"),
    ({"timeout_seconds": 301}, "timeout_seconds"),
    ({"timeout_seconds": "30"}, "timeout_seconds"),
    ({"timeout_seconds": 30.5}, "timeout_seconds"),
    ({"description": "x" * 1001}, "description"),
    ({"metadata": ["not", "an", "object"]}, "metadata"),
    ({"metadata": {"blob": "x" * 9000}}, "metadata"),
    ({"metadata": {"nul": "a\x00b"}}, "metadata"),
    ({"headers": {"Content-Type": "text/plain"}}, "headers"),
    ({"headers": {"host": "evil.example"}}, "headers"),
    ({"headers": {"X-Webhook-Signature": "forged"}}, "headers"),
    ({"headers": {"webhook-id": "forged"}}, "headers"),
    ({"headers": {"Bad Name": "x"}}, "headers"),
    ({"headers": {"X-Split": "a\r\nInjected: yes"}}, "headers"),
    ({"headers": {f"X-H{n}": "v" for n in range(33)}}, "headers"),
    ({"is_active": "true"}, "is_active"),
    ({"is_active": 1}, "is_active"),
    ({"surprise": 1}, "surprise"),
])
def test_create_refuses_invalid_fields_with_a_field_message(client, tenant, session, fields,
                                                             field):
    body = {"url": QUIET_URL, "event_types": ["invoice.*"], **fields}
    response = client.post(f"{API}/subscriptions", headers=tenant["headers"], json=body)
    assert_error(response, 422, field)
    assert session.scalar(select(Subscription.id)) is None


def test_create_requires_url_and_event_types(client, tenant):
    body = assert_error(client.post(f"{API}/subscriptions", headers=tenant["headers"],
                                    json={}), 422)
    assert set(body["errors"]) == {"url", "event_types"}


def test_custom_event_types_and_operational_filters_are_accepted(client, tenant):
    registered = client.post(f"{API}/events", headers=tenant["headers"], json={
        "name": "acme.order.shipped", "description": "An order left the warehouse."})
    assert registered.status_code == 201
    body = create_subscription(client, tenant,
                               event_types=["acme.order.shipped", "webhook.*", "*"])
    assert body["event_types"] == ["acme.order.shipped", "webhook.*", "*"]


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "https://127.0.0.1/hook",
                                 "https://10.1.2.3/hook", "https://169.254.169.254/latest",
                                 "https://[::1]/hook", "https://localhost/hook"])
def test_strict_url_rules_refuse_http_and_private_targets(client, tenant, strict_targets, url):
    assert_error(client.post(f"{API}/subscriptions", headers=tenant["headers"],
                             json={"url": url, "event_types": ["*"]}), 422, "url")


def test_strict_url_rules_accept_a_public_https_address(client, tenant, strict_targets):
    create_subscription(client, tenant, url="https://93.184.216.34/hook")


def test_malformed_json_wrong_type_and_oversized_bodies(client, tenant, app, session):
    url = f"{API}/subscriptions"
    malformed = client.post(url, headers={**tenant["headers"],
                                          "Content-Type": "application/json"},
                            data=b'{"url": ')
    assert_error(malformed, 400, "json")
    not_json = client.post(url, headers=tenant["headers"], data=b"url=x",
                           content_type="application/x-www-form-urlencoded")
    assert_error(not_json, 415)
    array = client.post(url, headers=tenant["headers"], json=[1, 2])
    assert_error(array, 422)
    limit = app.config["MAX_CONTENT_LENGTH"]
    oversized = client.post(url, headers=tenant["headers"], json={
        "url": QUIET_URL, "event_types": ["*"], "description": "x" * limit})
    assert_error(oversized, 413)
    deep = client.post(url, headers={**tenant["headers"], "Content-Type": "application/json"},
                       data=b"[" * 100000 + b"]" * 100000)
    assert_error(deep, 400)
    assert session.scalar(select(Subscription.id)) is None


def test_get_shows_statistics_and_never_the_secret(client, tenant):
    created = create_subscription(client, tenant)
    response = client.get(f"{API}/subscriptions/{created['id']}", headers=tenant["headers"])
    assert response.status_code == 200
    assert "secret" not in response.json
    assert all(name in response.json for name in STATISTICS)
    assert {k: v for k, v in response.json.items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k not in ("secret", "updated_at")}


def test_the_secret_appears_only_on_create_and_rotate(client, tenant, session, app):
    created = create_subscription(client, tenant)
    sub_url = f"{API}/subscriptions/{created['id']}"
    seen = [
        client.get(sub_url, headers=tenant["headers"]).json,
        client.get(f"{API}/subscriptions", headers=tenant["headers"]).json["items"][0],
        client.patch(sub_url, headers=tenant["headers"], json={"description": "x"}).json,
    ]
    for body in seen:
        assert "secret" not in body and created["secret"] not in str(body)
    rotated = client.post(f"{sub_url}/rotate-secret", headers=tenant["headers"], json={})
    assert rotated.status_code == 200
    assert rotated.json["secret"].startswith("whsec_")
    assert rotated.json["secret"] != created["secret"]
    after = client.get(sub_url, headers=tenant["headers"]).json
    assert "secret" not in after and rotated.json["secret"] not in str(after)
    stored = session.get(Subscription, created["id"])
    assert created["secret"] not in stored.secret_ciphertext


def test_rotation_keeps_the_previous_secret_for_the_grace_period(client, tenant, session,
                                                                 app):
    created = create_subscription(client, tenant)
    rotate = f"{API}/subscriptions/{created['id']}/rotate-secret"
    before = datetime.now(UTC)
    rotated = client.post(rotate, headers=tenant["headers"], json={})
    expires_at = datetime.fromisoformat(rotated.json["previous_secret_expires_at"])
    assert before + timedelta(seconds=86390) < expires_at < before + timedelta(seconds=86410)

    box = SecretBox(app.config["WEBHOOKS_SETTINGS"].encryption_keys)
    stored = session.get(Subscription, created["id"])
    assert box.decrypt(stored.previous_secret_ciphertext) == created["secret"]
    assert box.decrypt(stored.secret_ciphertext) == rotated.json["secret"]

    week = client.post(rotate, headers=tenant["headers"], json={"grace_period_seconds": 604800})
    expires_at = datetime.fromisoformat(week.json["previous_secret_expires_at"])
    assert expires_at > before + timedelta(days=6, hours=23)
    session.expire_all()
    stored = session.get(Subscription, created["id"])
    assert box.decrypt(stored.previous_secret_ciphertext) == rotated.json["secret"]

    at_once = client.post(rotate, headers=tenant["headers"], json={"grace_period_seconds": 0})
    assert at_once.json["previous_secret_expires_at"] is None
    session.expire_all()
    assert session.get(Subscription, created["id"]).previous_secret_ciphertext is None


@pytest.mark.parametrize("grace", [-1, 604801, "60", 1.5, None])
def test_rotation_grace_period_bounds(client, tenant, session, grace):
    created = create_subscription(client, tenant)
    response = client.post(f"{API}/subscriptions/{created['id']}/rotate-secret",
                           headers=tenant["headers"], json={"grace_period_seconds": grace})
    assert_error(response, 422, "grace_period_seconds")
    assert session.get(Subscription, created["id"]).previous_secret_ciphertext is None


def test_rotation_without_a_body_uses_the_default_grace(client, tenant):
    created = create_subscription(client, tenant)
    response = client.post(f"{API}/subscriptions/{created['id']}/rotate-secret",
                           headers=tenant["headers"])
    assert response.status_code == 200 and response.json["previous_secret_expires_at"]


def test_patch_changes_only_the_fields_sent(client, tenant):
    created = create_subscription(client, tenant, description="old", metadata={"a": 1})
    response = client.patch(f"{API}/subscriptions/{created['id']}", headers=tenant["headers"],
                            json={"event_types": ["payment.succeeded"], "timeout_seconds": 60,
                                  "headers": {"X-Env": "prod"}, "description": None})
    assert response.status_code == 200
    body = response.json
    assert body["event_types"] == ["payment.succeeded"] and body["timeout_seconds"] == 60
    assert body["headers"] == {"X-Env": "[redacted]"} and body["description"] is None
    assert body["url"] == created["url"] and body["metadata"] == {"a": 1}
    assert body["updated_at"] >= created["updated_at"]


@pytest.mark.parametrize("changes, field", [
    ({"url": "gopher://x"}, "url"),
    ({"url": None}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["nope.nope"]}, "event_types"),
    ({"headers": {"User-Agent": "me"}}, "headers"),
    ({"timeout_seconds": 1000}, "timeout_seconds"),
    ({"metadata": {"blob": "x" * 9000}}, "metadata"),
    ({"secret": "whsec_mine"}, "secret"),
    ({"status": "active"}, "status"),
])
def test_patch_validates_like_create_and_writes_nothing_on_error(client, tenant, changes,
                                                                 field):
    created = create_subscription(client, tenant, description="kept")
    url = f"{API}/subscriptions/{created['id']}"
    response = client.patch(url, headers=tenant["headers"],
                            json={"description": "would change", **changes})
    assert_error(response, 422, field)
    after = client.get(url, headers=tenant["headers"]).json
    assert after["description"] == "kept" and after["updated_at"] == created["updated_at"]


def test_pausing_disables_open_deliveries_and_stops_matching(client, tenant, session):
    created = create_subscription(client, tenant)
    open_ids = seed_deliveries(session, tenant["id"], created["id"], 2, status="retrying")
    done_ids = seed_deliveries(session, tenant["id"], created["id"], 1, status="success")
    response = client.patch(f"{API}/subscriptions/{created['id']}", headers=tenant["headers"],
                            json={"is_active": False})
    assert (response.json["status"], response.json["is_active"]) == ("paused", False)
    session.expire_all()
    statuses = {d.id: d.status for d in session.scalars(select(Delivery))}
    assert [statuses[i] for i in open_ids] == ["disabled", "disabled"]
    assert statuses[done_ids[0]] == "success"
    listed = client.get(f"{API}/subscriptions?is_active=false", headers=tenant["headers"])
    assert [s["id"] for s in listed.json["items"]] == [created["id"]]


def test_reactivation_clears_the_reason_and_the_failure_streak(client, tenant, session):
    created = create_subscription(client, tenant)
    subscription = session.get(Subscription, created["id"])
    subscription.status, subscription.disabled_reason = "disabled", "the endpoint answered 410"
    subscription.disabled_at = subscription.failing_since = datetime.now(UTC)
    subscription.consecutive_failures, subscription.failure_count = 7, 9
    session.commit()
    url = f"{API}/subscriptions/{created['id']}"
    disabled = client.get(url, headers=tenant["headers"]).json
    assert (disabled["status"], disabled["is_active"]) == ("disabled", False)
    assert disabled["disabled_reason"] == "the endpoint answered 410"

    pause = client.patch(url, headers=tenant["headers"], json={"is_active": False}).json
    assert pause["status"] == "disabled", "pausing a disabled subscription keeps its reason"

    body = client.patch(url, headers=tenant["headers"], json={"is_active": True}).json
    assert (body["status"], body["is_active"], body["disabled_reason"]) == ("active", True, None)
    assert body["disabled_at"] is None and body["consecutive_failures"] == 0
    assert body["failure_count"] == 9, "history counters are kept"
    session.expire_all()
    assert session.get(Subscription, created["id"]).failing_since is None


def test_delete_disables_open_deliveries_and_keeps_history(client, tenant, session):
    created = create_subscription(client, tenant)
    open_ids = seed_deliveries(session, tenant["id"], created["id"], 2, status="pending")
    failed_ids = seed_deliveries(session, tenant["id"], created["id"], 1, status="failed",
                                 attempts=2)
    url = f"{API}/subscriptions/{created['id']}"
    response = client.delete(url, headers=tenant["headers"])
    assert response.status_code == 204 and response.data == b""

    assert_error(client.get(url, headers=tenant["headers"]), 404)
    assert_error(client.delete(url, headers=tenant["headers"]), 404)
    assert_error(client.patch(url, headers=tenant["headers"], json={"is_active": True}), 404)
    assert_error(client.get(f"{url}/deliveries", headers=tenant["headers"]), 404)
    listed = client.get(f"{API}/subscriptions", headers=tenant["headers"]).json
    assert listed == {"items": [], "next_cursor": None}

    history = client.get(f"{API}/deliveries?subscription_id={created['id']}",
                         headers=tenant["headers"]).json["items"]
    by_id = {d["id"]: d for d in history}
    assert set(by_id) == set(open_ids + failed_ids)
    assert all(by_id[i]["status"] == "disabled" for i in open_ids)
    assert by_id[failed_ids[0]]["status"] == "failed"
    detail = client.get(f"{API}/deliveries/{failed_ids[0]}", headers=tenant["headers"]).json
    assert [a["attempt_number"] for a in detail["attempts"]] == [1, 2]
    session.expire_all()
    assert session.get(Subscription, created["id"]).deleted_at is not None


def test_subscription_deliveries_lists_only_that_subscription(client, tenant, session):
    first = create_subscription(client, tenant)
    second = create_subscription(client, tenant)
    mine = seed_deliveries(session, tenant["id"], first["id"], 3)
    seed_deliveries(session, tenant["id"], second["id"], 2)
    response = client.get(f"{API}/subscriptions/{first['id']}/deliveries?limit=2",
                          headers=tenant["headers"])
    assert response.status_code == 200
    page = response.json
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"{API}/subscriptions/{first['id']}/deliveries",
                      query_string={"cursor": page["next_cursor"]},
                      headers=tenant["headers"]).json
    assert {d["id"] for d in page["items"] + rest["items"]} == set(mine)
    assert rest["next_cursor"] is None


def test_list_filters_by_status(client, tenant):
    active = create_subscription(client, tenant)
    paused = create_subscription(client, tenant, is_active=False)
    listing = f"{API}/subscriptions"
    by_status = client.get(listing, query_string={"status": "paused"},
                           headers=tenant["headers"]).json["items"]
    assert [s["id"] for s in by_status] == [paused["id"]]
    by_flag = client.get(listing, query_string={"is_active": "true"},
                         headers=tenant["headers"]).json["items"]
    assert [s["id"] for s in by_flag] == [active["id"]]
    assert_error(client.get(listing, query_string={"status": "sleeping"},
                            headers=tenant["headers"]), 422, "status")


@pytest.mark.parametrize("path", ["sub_doesnotexist", "nope", "sub_%00", "x" * 300,
                                  "dlv_123"])
def test_unknown_or_malformed_ids_are_404(client, tenant, path):
    for method, suffix in (("get", ""), ("patch", ""), ("delete", ""),
                           ("post", "/rotate-secret"), ("get", "/deliveries"),
                           ("post", "/replay"), ("post", "/test"), ("get", "/stats")):
        response = getattr(client, method)(f"{API}/subscriptions/{path}{suffix}",
                                           headers=tenant["headers"],
                                           **({"json": {}} if method != "get" else {}))
        assert_error(response, 404)


# Payload filters (docs/USAGE.md "Payload filters"; the rules: tests/engine/test_payload_filters.py)

LARGE_EUR = {"all": [{"path": "data.amount", "gte": 10000},
                     {"path": "data.currency", "in": ["EUR", "USD"]}]}


def test_a_filter_is_shown_in_detail_list_and_openapi_and_patch_null_removes_it(client,
                                                                                tenant):
    created = create_subscription(client, tenant, filter=LARGE_EUR)
    url = f"{API}/subscriptions/{created['id']}"
    assert created["filter"] == LARGE_EUR
    assert client.get(url, headers=tenant["headers"]).json["filter"] == LARGE_EUR
    listed = client.get(f"{API}/subscriptions", headers=tenant["headers"]).json["items"]
    assert [item["filter"] for item in listed] == [LARGE_EUR]
    assert create_subscription(client, tenant)["filter"] is None

    changed = client.patch(url, headers=tenant["headers"],
                           json={"filter": {"path": "type", "prefix": "invoice."}})
    assert changed.status_code == 200
    assert changed.json["filter"] == {"path": "type", "prefix": "invoice."}
    kept = client.patch(url, headers=tenant["headers"], json={"description": "x"}).json
    assert kept["filter"] == {"path": "type", "prefix": "invoice."}
    removed = client.patch(url, headers=tenant["headers"], json={"filter": None})
    assert removed.status_code == 200 and removed.json["filter"] is None

    schemas = client.get("/openapi.json").json["components"]["schemas"]
    for name in ("SubscriptionCreate", "SubscriptionUpdate", "Subscription"):
        assert "filter" in schemas[name]["properties"], name
    assert "filter.all[1].gt" in schemas["SubscriptionCreate"]["properties"]["filter"][
        "description"]


BROKEN_FILTERS = [
    ({"path": "data.amount", "above": 1}, "filter.above"),  # an unknown operator
    ({"path": "payload.amount", "gte": 1}, "filter.path"),  # a bad path
    ({"all": [{"path": "data.a", "eq": 1}, {"path": "data.b", "gt": {"n": 1}}]},
     "filter.all[1].gt"),  # a value of the wrong type for its operator
    ({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {
        "path": "data.a", "exists": True}}}}}}}}}}, "filter" + ".not" * 9),  # too deep
    ({"path": "data.a", "in": ["x" * 1000] * 5}, "filter"),  # over 4 KiB
    ({"path": "data.a", "eq": "nul\x00"}, "filter"),  # not storable (the schema's check)
    (["not", "an", "object"], "filter"),
]


@pytest.mark.parametrize(("payload_filter", "place"), BROKEN_FILTERS)
def test_a_broken_filter_is_a_422_naming_its_place_on_create_and_patch(
        client, tenant, session, payload_filter, place):
    body = {"url": QUIET_URL, "event_types": ["invoice.*"], "filter": payload_filter}
    assert_error(client.post(f"{API}/subscriptions", headers=tenant["headers"], json=body),
                 422, place)
    assert session.scalar(select(Subscription.id)) is None

    created = create_subscription(client, tenant, filter=LARGE_EUR)
    url = f"{API}/subscriptions/{created['id']}"
    response = client.patch(url, headers=tenant["headers"],
                            json={"description": "would change", "filter": payload_filter})
    assert_error(response, 422, place)
    after = client.get(url, headers=tenant["headers"]).json
    assert after["filter"] == LARGE_EUR and after["updated_at"] == created["updated_at"]

"""Authentication and tenant isolation over every route of the API.

`routes(ids)` is the table of every operation; a test checks it against the served OpenAPI
document, so a new route cannot be left out of these matrices.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.support.api_support import (
    API,
    assert_error,
    create_subscription,
    documented_operations,
    seed_deliveries,
)


def routes(ids: dict) -> list[tuple[str, str, dict | None]]:
    """(method, path, JSON body) of every operation, aimed at the objects in `ids`."""
    sub, dlv, evt = ids["subscription"], ids["delivery"], ids["event_type"]
    return [
        ("GET", f"{API}/subscriptions", None),
        ("POST", f"{API}/subscriptions", {"url": "http://127.0.0.1:9/", "event_types": ["*"]}),
        ("GET", f"{API}/subscriptions/{sub}", None),
        ("PATCH", f"{API}/subscriptions/{sub}", {"is_active": False, "description": "taken"}),
        ("DELETE", f"{API}/subscriptions/{sub}", None),
        ("POST", f"{API}/subscriptions/{sub}/rotate-secret", {"grace_period_seconds": 0}),
        ("GET", f"{API}/subscriptions/{sub}/deliveries", None),
        ("POST", f"{API}/subscriptions/{sub}/replay", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", f"{API}/subscriptions/{sub}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", f"{API}/subscriptions/{sub}/test", None),
        ("GET", f"{API}/subscriptions/{sub}/stats", None),
        ("GET", f"{API}/deliveries", None),
        ("GET", f"{API}/deliveries/{dlv}", None),
        ("POST", f"{API}/deliveries/{dlv}/retry", None),
        ("GET", f"{API}/events", None),
        ("GET", f"{API}/events/{evt}", None),
        # After the read above: B may register a name A uses, in its own namespace.
        ("POST", f"{API}/events", {"name": evt, "description": "mine"}),
        ("POST", f"{API}/publish", {"event_type": "invoice.created", "data": {}}),
        ("POST", f"{API}/portal-sessions", {}),
        ("DELETE", f"{API}/portal-sessions/{ids['portal_session']}", None),
        ("GET", f"{API}/portal-settings", None),
        ("PATCH", f"{API}/portal-settings", {"title": "taken"}),
        ("POST", f"{API}/bulk-retries", {"status": "failed", "since": "2026-01-01T00:00:00Z",
                                         "until": "2026-01-02T00:00:00Z"}),
        ("GET", f"{API}/bulk-retries/{ids['bulk_retry']}", None),
        ("POST", f"{API}/bulk-retries/{ids['bulk_retry']}/cancel", None),
    ]


@pytest.fixture
def owned(client, tenant, session) -> dict:
    """Tenant A's objects: a subscription, a failed delivery with attempts, a custom type."""
    subscription = create_subscription(client, tenant)
    (delivery_id,) = seed_deliveries(session, tenant["id"], subscription["id"], attempts=2)
    registered = client.post(f"{API}/events", headers=tenant["headers"], json={
        "name": "acme.secret.plan", "description": "A's own type"})
    assert registered.status_code == 201
    portal_session = client.post(f"{API}/portal-sessions", headers=tenant["headers"], json={})
    bulk_retry = client.post(f"{API}/bulk-retries", headers=tenant["headers"], json={
        "status": "failed", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})
    assert (portal_session.status_code, bulk_retry.status_code) == (201, 202)
    return {"subscription": subscription["id"], "delivery": delivery_id,
            "event_type": "acme.secret.plan", "portal_session": portal_session.json["id"],
            "bulk_retry": bulk_retry.json["id"]}


def call(client, method: str, path: str, body: dict | None, headers: dict):
    return client.open(path, method=method, headers=headers,
                       **({"json": body} if body is not None else {}))


def snapshot(session, tenant_id: str) -> dict[str, list]:
    """Every row tenant A owns, as JSON, to compare before and after."""
    session.expire_all()
    queries = {
        "subscriptions": "SELECT row_to_json(t) FROM subscriptions t WHERE tenant_id = :t",
        "deliveries": "SELECT row_to_json(t) FROM deliveries t WHERE tenant_id = :t",
        "attempts": "SELECT row_to_json(a) FROM delivery_attempts a JOIN deliveries d "
                    "ON d.id = a.delivery_id WHERE d.tenant_id = :t",
        "event_types": "SELECT row_to_json(t) FROM event_types t WHERE tenant_id = :t",
        "events": "SELECT row_to_json(t) FROM events t WHERE tenant_id = :t",
    }
    return {name: sorted(map(str, session.scalars(text(sql), {"t": tenant_id})))
            for name, sql in queries.items()}


def test_the_route_table_covers_every_documented_operation(client, owned):
    spec = client.get("/openapi.json").json
    documented = {key for key in documented_operations(spec) if key[1].startswith(API)}
    ids = "|".join(re.escape(object_id) for object_id in owned.values())
    tabled = {(method, re.sub(rf"(?<=/)({ids})(?=/|$)", "{id}", path))
              for method, path, _ in routes(owned)}
    generic = {(method, re.sub(r"\{\w+\}", "{id}", path)) for method, path in documented}
    assert tabled == generic


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token whk_x", "whk_nokey",
    "Bearer whk_unknown_key", "Bearer whk_unknown key with spaces",
])
def test_every_route_answers_401_without_a_valid_key(client, owned, session, tenant,
                                                     authorization):
    before = snapshot(session, tenant["id"])
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in routes(owned):
        response = call(client, method, path, body, headers)
        error = assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert error["message"], (method, path)
    assert snapshot(session, tenant["id"]) == before


def test_a_revoked_key_is_refused_everywhere_at_once(client, runner, owned, tenant):
    listed = runner.invoke(args=["api-keys", "list", tenant["id"]])
    key_id = listed.stdout.split()[0]
    assert client.get(f"{API}/subscriptions", headers=tenant["headers"]).status_code == 200
    revoked = runner.invoke(args=["api-keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    for method, path, body in routes(owned):
        body = assert_error(call(client, method, path, body, tenant["headers"]), 401)
        assert "revoked" in body["message"]


def test_auth_is_checked_before_the_body_and_the_ids(client, owned):
    response = client.post(f"{API}/subscriptions", json={"url": 5})
    assert_error(response, 401)
    assert_error(client.get(f"{API}/subscriptions/sub_nothere"), 401)
    assert_error(client.post(f"{API}/publish", data=b"{", content_type="text/plain"), 401)


def test_another_tenants_objects_are_404_everywhere_and_unchanged(client, owned, session,
                                                                  tenant, other_tenant):
    before = snapshot(session, tenant["id"])
    for method, path, body in routes(owned):
        response = call(client, method, path, body, other_tenant["headers"])
        if any(object_id in path for object_id in owned.values()):
            assert_error(response, 404)
            assert tenant["id"] not in response.get_data(as_text=True), "no hint of the owner"
            continue
        # A collection: B works in its own namespace and never sees A's objects.
        assert response.status_code in (200, 201, 202), (method, path, response.json)
        answer = response.get_data(as_text=True)
        assert owned["subscription"] not in answer and owned["delivery"] not in answer
        if method == "GET":
            assert owned["event_type"] not in answer, (method, path)
    listed = client.get(f"{API}/deliveries", query_string={"subscription_id":
                                                            owned["subscription"]},
                        headers=other_tenant["headers"])
    assert listed.json == {"items": [], "next_cursor": None}
    assert snapshot(session, tenant["id"]) == before

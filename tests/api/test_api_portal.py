"""Portal sessions and settings: a scoped, short-lived token that works under
/api/v1/portal only, with the allow-listed operations of /api/v1/webhooks; its binding to
subscriptions and its read-only rule; the tenant's embedding origins and branding, and
the headers of the portal page."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.support.api_support import API, assert_error, create_subscription, seed_deliveries
from tests.support.engine_support import execute

PORTAL = "/api/v1/portal"
SUBSCRIPTION = "/subscriptions/{subscription_id}"
DELIVERY = "/deliveries/{delivery_id}"
# The allow-list of the issue, plus the read-only catalogue and the session's own scope.
PORTAL_OPERATIONS = {
    ("GET", "/subscriptions"), ("POST", "/subscriptions"),
    ("GET", SUBSCRIPTION), ("PATCH", SUBSCRIPTION), ("DELETE", SUBSCRIPTION),
    ("POST", f"{SUBSCRIPTION}/rotate-secret"), ("POST", f"{SUBSCRIPTION}/test"),
    ("GET", f"{SUBSCRIPTION}/stats"), ("GET", f"{SUBSCRIPTION}/deliveries"),
    ("POST", f"{SUBSCRIPTION}/replay"), ("POST", f"{SUBSCRIPTION}/recover"),
    ("GET", "/deliveries"), ("GET", DELIVERY), ("POST", f"{DELIVERY}/retry"),
    ("GET", "/events"), ("GET", "/events/{event_type}"), ("GET", "/session"),
}
# A body that passes the schema, so that what answers is the scope or the read-only rule.
WRITE_BODIES = {"recover": {"since": "2026-01-01T00:00:00Z"}}


def _routes(app, prefix: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every route under `prefix`, the path relative to it."""
    return {(method, rule.rule.removeprefix(prefix).replace("<string:", "{").replace(">", "}"))
            for rule in app.url_map.iter_rules() if rule.rule.startswith(prefix + "/")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def _path(template: str, **ids: str) -> str:
    return template.format_map({"subscription_id": "sub_x", "delivery_id": "dlv_x",
                                "event_type": "invoice.created", "session_id": "pss_x",
                                "bulk_retry_id": "blk_x",
                                **ids})


def open_session(client, tenant, **fields) -> dict:
    answer = client.post(f"{API}/portal-sessions", headers=tenant["headers"], json=fields)
    assert answer.status_code == 201, answer.json
    return answer.json


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(answer, status: int, error_code: str) -> None:
    assert answer.status_code == status, answer.json
    assert answer.json["code"] == status and answer.json["error_code"] == error_code
    assert answer.json["message"]


def test_session_token_opens_the_allowed_operations_only(app, client, tenant, session):
    before = datetime.now(UTC)
    created = open_session(client, tenant)
    session_id, token = created["id"], created["token"]
    assert session_id.startswith("pss_") and token.startswith(f"{session_id}.")
    assert created["url"] == f"/portal/{session_id}#{token}"
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert before + timedelta(minutes=59) < expires_at < before + timedelta(minutes=61)
    assert (created["read_only"], created["subscription_ids"]) == (False, None)

    # Only the SHA-256 of the secret is stored; the token is nowhere in the table.
    secret = token.split(".", 1)[1]
    stored = session.execute(text("SELECT secret_hash, portal_sessions::text AS whole "
                                  "FROM portal_sessions WHERE id = :id"),
                             {"id": session_id}).one()
    session.commit()
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored.whole

    # The portal's routes are exactly the allow-list, each the API's own view on its path.
    assert _routes(app, PORTAL) == PORTAL_OPERATIONS
    api_views = {rule.rule.removeprefix(API): app.view_functions[rule.endpoint].view_class
                 for rule in app.url_map.iter_rules() if rule.rule.startswith(API)}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PORTAL) and rule.rule != f"{PORTAL}/session":
            view = app.view_functions[rule.endpoint].view_class
            assert api_views[rule.rule.removeprefix(PORTAL)] is view, rule.rule

    listed = client.get(f"{PORTAL}/subscriptions", headers=bearer(token))
    assert listed.status_code == 200 and listed.json["items"] == []
    assert client.get(f"{PORTAL}/session", headers=bearer(token)).json == {
        "id": session_id, "expires_at": created["expires_at"], "subscription_ids": None,
        "read_only": False, "can_create": True}

    # The token is refused on every route of the tenant's API, /publish and the portal
    # sessions and settings included; the API key on every route of the portal.
    api_routes = _routes(app, API)
    assert {("POST", "/publish"), ("POST", "/portal-sessions"),
            ("PATCH", "/portal-settings")} <= api_routes
    for method, path in sorted(api_routes):
        answer = client.open(f"{API}{_path(path)}", method=method, headers=bearer(token),
                             json={})
        assert answer.status_code == 401, (method, path, answer.json)
        assert "only under /api/v1/portal" in answer.json["message"]
    for method, path in sorted(PORTAL_OPERATIONS):
        answer = client.open(f"{PORTAL}{_path(path)}", method=method,
                             headers=tenant["headers"], json={})
        assert answer.status_code == 401, (method, path, answer.json)
        assert "API keys are not accepted" in answer.json["message"]
    assert client.get(f"{PORTAL}/subscriptions").status_code == 401


def test_revoked_expired_and_forged_tokens_answer_401_with_their_code(app, client, tenant,
                                                                     other_tenant):
    revoked, expired = open_session(client, tenant), open_session(client, tenant)
    path = f"{API}/portal-sessions/{revoked['id']}"
    assert client.delete(path, headers=other_tenant["headers"]).status_code == 404
    assert client.get(f"{PORTAL}/session", headers=bearer(revoked["token"])).status_code == 200
    assert client.delete(path, headers=tenant["headers"]).status_code == 204
    assert client.delete(path, headers=tenant["headers"]).status_code == 204  # again: no-op
    assert_error(client.delete(f"{API}/portal-sessions/pss_nope", headers=tenant["headers"]),
                 404)
    execute(app, "UPDATE portal_sessions SET expires_at = now() - interval '1 second' "
                 "WHERE id = :id", id=expired["id"])

    forged = f"{revoked['id']}.{'A' * 43}"  # a known id, a wrong secret
    for token, error_code in ((revoked["token"], "portal_session_revoked"),
                              (expired["token"], "portal_session_expired"),
                              (forged, "portal_session_invalid"),
                              ("pss_unknown.secret", "portal_session_invalid")):
        answer = client.get(f"{PORTAL}/subscriptions", headers=bearer(token))
        assert_refused(answer, 401, error_code)
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


@pytest.mark.parametrize("body, field", [
    ({"ttl_seconds": 59}, "ttl_seconds"), ({"ttl_seconds": 86401}, "ttl_seconds"),
    ({"ttl_seconds": "3600"}, "ttl_seconds"), ({"subscription_ids": []}, "subscription_ids"),
    ({"subscription_ids": ["sub_unknown"]}, "subscription_ids"),
    ({"read_only": "yes"}, "read_only"), ({"scope": "all"}, "scope"),
])
def test_bad_session_requests_answer_422_and_store_nothing(client, tenant, session, body,
                                                          field):
    answer = client.post(f"{API}/portal-sessions", headers=tenant["headers"], json=body)
    assert_error(answer, 422, field)
    assert session.execute(text("SELECT count(*) FROM portal_sessions")).scalar() == 0
    session.commit()


def test_another_tenants_subscription_cannot_be_bound(client, tenant, other_tenant):
    theirs = create_subscription(client, other_tenant)
    answer = client.post(f"{API}/portal-sessions", headers=tenant["headers"],
                         json={"subscription_ids": [theirs["id"]]})
    assert_error(answer, 422, "subscription_ids")


def test_bound_session_sees_and_changes_only_its_subscriptions(app, client, tenant, session):
    mine, other = create_subscription(client, tenant), create_subscription(client, tenant)
    [my_delivery] = seed_deliveries(session, tenant["id"], mine["id"])
    [other_delivery] = seed_deliveries(session, tenant["id"], other["id"])
    token = open_session(client, tenant, subscription_ids=[mine["id"]])["token"]
    headers = bearer(token)

    listed = client.get(f"{PORTAL}/subscriptions", headers=headers).json["items"]
    assert [item["id"] for item in listed] == [mine["id"]]
    deliveries = client.get(f"{PORTAL}/deliveries", headers=headers).json["items"]
    assert [item["id"] for item in deliveries] == [my_delivery]
    filtered = client.get(f"{PORTAL}/deliveries", headers=headers,
                          query_string={"subscription_id": other["id"]})
    assert filtered.json["items"] == []
    assert client.get(f"{PORTAL}{_path(DELIVERY, delivery_id=my_delivery)}",
                      headers=headers).status_code == 200

    # The other subscription and its delivery answer as another tenant's objects do.
    for method, path in sorted(PORTAL_OPERATIONS):
        if "{subscription_id}" not in path and "{delivery_id}" not in path:
            continue
        url = f"{PORTAL}{_path(path, subscription_id=other['id'], delivery_id=other_delivery)}"
        answer = client.open(url, method=method, headers=headers,
                             json=WRITE_BODIES.get(path.rsplit("/", 1)[-1], {}))
        assert answer.status_code == 404, (method, path, answer.json)

    # It creates none (403), and may change its own.
    refused = client.post(f"{PORTAL}/subscriptions", headers=headers,
                          json={"url": mine["url"], "event_types": ["invoice.*"]})
    assert_refused(refused, 403, "portal_session_bound")
    changed = client.patch(f"{PORTAL}/subscriptions/{mine['id']}", headers=headers,
                           json={"description": "from the portal"})
    assert changed.status_code == 200 and changed.json["description"] == "from the portal"
    assert client.get(f"{PORTAL}/session", headers=headers).json["can_create"] is False
    retried = client.post(f"{PORTAL}/deliveries/{my_delivery}/retry", headers=headers)
    assert retried.status_code == 202 and retried.json["status"] == "pending"
    everything = client.get(f"{API}/subscriptions", headers=tenant["headers"]).json["items"]
    assert {item["id"] for item in everything} == {mine["id"], other["id"]}
    # The scope ended with its requests: this test's own session sees both.
    count = session.execute(text("SELECT count(*) FROM subscriptions")).scalar()
    assert count == 2 and len(client.get(f"{API}/deliveries",
                                         headers=tenant["headers"]).json["items"]) == 2


def test_read_only_session_refuses_every_write_with_403(app, client, tenant, session):
    mine = create_subscription(client, tenant, description="before")
    [delivery] = seed_deliveries(session, tenant["id"], mine["id"])
    headers = bearer(open_session(client, tenant, read_only=True)["token"])
    ids = {"subscription_id": mine["id"], "delivery_id": delivery}

    writes = sorted((m, p) for m, p in PORTAL_OPERATIONS if m != "GET")
    assert len(writes) == 8
    for method, path in writes:
        answer = client.open(f"{PORTAL}{_path(path, **ids)}", method=method, headers=headers,
                             json=WRITE_BODIES.get(path.rsplit("/", 1)[-1], {}))
        assert_refused(answer, 403, "portal_session_read_only")
    for method, path in sorted(PORTAL_OPERATIONS - set(writes)):
        answer = client.open(f"{PORTAL}{_path(path, **ids)}", method=method, headers=headers)
        assert answer.status_code == 200, (path, answer.json)
    stored = client.get(f"{API}/subscriptions/{mine['id']}", headers=tenant["headers"]).json
    assert (stored["description"], stored["status"]) == ("before", "active")
    assert client.get(f"{API}/deliveries/{delivery}",
                      headers=tenant["headers"]).json["attempt_count"] == 0
    assert client.get(f"{PORTAL}/session", headers=headers).json["read_only"] is True


def test_portal_settings_are_validated_normalized_and_per_tenant(client, tenant, other_tenant):
    path = f"{API}/portal-settings"
    assert client.get(path, headers=tenant["headers"]).json == {
        "allowed_origins": [], "title": None, "accent_color": None, "updated_at": None}
    saved = client.patch(path, headers=tenant["headers"], json={
        "allowed_origins": ["https://App.Example.com:443", "http://localhost:3000",
                            "https://app.example.com", "http://127.0.0.2:8080"],
        "title": "Acme webhooks", "accent_color": "#AA3300"})
    assert saved.status_code == 200, saved.json
    assert saved.json["allowed_origins"] == ["https://app.example.com",
                                             "http://localhost:3000", "http://127.0.0.2:8080"]
    assert (saved.json["title"], saved.json["accent_color"]) == ("Acme webhooks", "#AA3300")

    for body, field in (
            ({"allowed_origins": ["http://app.example.com"]}, "allowed_origins"),
            ({"allowed_origins": ["https://app.example.com/portal"]}, "allowed_origins"),
            ({"allowed_origins": ["https://a.example.com; script-src *"]}, "allowed_origins"),
            ({"allowed_origins": ["https://*.example.com"]}, "allowed_origins"),
            ({"allowed_origins": ["*"]}, "allowed_origins"),
            ({"allowed_origins": [f"https://h{n}.example.com" for n in range(51)]},
             "allowed_origins"),
            ({"accent_color": "red"}, "accent_color"), ({"accent_color": "#12345"},
                                                        "accent_color"),
            ({"title": ""}, "title"), ({"title": "x" * 101}, "title"),
            ({"theme": "dark"}, "theme")):
        assert_error(client.patch(path, headers=tenant["headers"], json=body), 422, field)
    assert client.get(path, headers=tenant["headers"]).json == saved.json

    reset = client.patch(path, headers=tenant["headers"], json={"title": None})
    assert reset.json["title"] is None and reset.json["accent_color"] == "#AA3300"
    assert client.get(path, headers=other_tenant["headers"]).json["allowed_origins"] == []


def test_portal_page_headers_follow_the_tenants_origins(client, tenant, other_tenant):
    client.patch(f"{API}/portal-settings", headers=tenant["headers"], json={
        "allowed_origins": ["https://app.example.com", "http://localhost:3000"],
        "title": "Acme <webhooks>", "accent_color": "#aa3300"})
    framable = open_session(client, tenant)
    unframable = open_session(client, other_tenant)

    page = client.get(f"/portal/{framable['id']}")
    assert page.status_code == 200 and "X-Frame-Options" not in page.headers
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://app.example.com http://localhost:3000" in policy
    assert "script-src 'self'" in policy and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "<title>Acme &lt;webhooks&gt;</title>" in html and 'data-api="/api/v1/portal"' in html
    assert 'data-accent="#aa3300"' in html and 'id="sign-in"' not in html
    assert framable["token"] not in html

    assert client.get(f"/portal/{unframable['id']}").headers["Content-Security-Policy"] \
        .endswith("frame-ancestors 'none'")
    unknown = client.get("/portal/pss_unknown")
    assert unknown.status_code == 404 and "not valid" in unknown.get_data(as_text=True)
    assert unknown.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    console = client.get("/console")
    assert console.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert "X-Frame-Options" not in console.headers

    client.delete(f"{API}/portal-sessions/{framable['id']}", headers=tenant["headers"])
    assert client.get(f"/portal/{framable['id']}").status_code == 200  # it says it ended

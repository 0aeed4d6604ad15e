"""HTTPS: with WEBHOOKS_REQUIRE_HTTPS on, http:// targets are refused; certificates are
always verified, against WEBHOOKS_CA_BUNDLE when it is set."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from tests.support.engine_support import isolated_worker
from tests.support.helpers import wait_for
from tests.support.security_support import override_settings
from webhooks_api.domain.models import Delivery, DeliveryAttempt

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"


@pytest.mark.parametrize("url, status", [
    ("http://127.0.0.1:9/hook", 422), ("HTTP://127.0.0.1:9/hook", 422),
    ("https://127.0.0.1:9/hook", 201),
])
def test_require_https_refuses_http_urls(app, client, tenant, url, status):
    with override_settings(app, require_https=True):
        response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
            "url": url, "event_types": ["invoice.created"]})
    assert response.status_code == status, response.json
    if status == 422:
        assert response.json["errors"]["url"] == [
            "URL must use https (WEBHOOKS_REQUIRE_HTTPS is on)"]


def test_certificate_is_verified_and_ca_bundle_trusted(client, tenant, tls_receiver, worker,
                                                       session, test_env):
    port = tls_receiver.server.server_address[1]
    created = [
        client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
            "url": url, "event_types": ["invoice.created"]})
        for url in (f"https://127.0.0.1:{port}/hook", f"https://localhost:{port}/hook")
    ]
    assert [c.status_code for c in created] == [201, 201]

    # The shared worker has no CA bundle: the self-signed certificate is refused.
    published = client.post("/api/v1/webhooks/publish", headers=tenant["headers"],
                            json={"event_type": "invoice.created", "data": {"n": 1}})
    assert published.status_code == 202

    def first_attempts():
        session.expire_all()
        attempts = session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.attempt_number == 1)).all()
        return attempts if len(attempts) == 2 else None

    attempts = wait_for(first_attempts, timeout=30, message="two first attempts")
    assert {a.error_class for a in attempts} == {"tls_error"}
    assert "CERTIFICATE_VERIFY_FAILED" in attempts[0].error_message
    assert tls_receiver.requests == []

    # A worker trusting the certificate through WEBHOOKS_CA_BUNDLE delivers.
    with isolated_worker(test_env, {"WEBHOOKS_CA_BUNDLE": tls_receiver.cert_path}) as trusted:
        trusted.publish("invoice.created", {"n": 2}, tenant["id"], event_id="evt_trusted")
        wait_for(lambda: len(tls_receiver.requests) == 2, timeout=30,
                 message="both deliveries over verified TLS")

    hosts = sorted(request.headers["Host"] for request in tls_receiver.requests)
    assert hosts == [f"127.0.0.1:{port}", f"localhost:{port}"]
    secrets = {c.json["url"]: c.json["secret"] for c in created}
    for request in tls_receiver.requests:
        secret = secrets[f"https://{request.headers['Host']}/hook"]
        assert Webhook(secret).verify(request.body, dict(request.headers))["id"] == "evt_trusted"
    session.expire_all()
    succeeded = session.scalars(select(Delivery).where(Delivery.status == "success")).all()
    assert sorted(d.event.event_id for d in succeeded) == ["evt_trusted", "evt_trusted"]


def test_http_subscription_is_not_contacted_once_https_is_required(client, tenant, receiver,
                                                                   session, test_env):
    """A subscription made with http:// before WEBHOOKS_REQUIRE_HTTPS was turned on: its
    delivery fails at once with `https_required`, is never retried, and the receiver is
    never even connected to."""
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": receiver.url, "event_types": ["invoice.created"]})
    assert created.status_code == 201 and created.json["url"].startswith("http://")

    with isolated_worker(test_env, {"WEBHOOKS_REQUIRE_HTTPS": "true"}) as strict, \
            strict.task_events() as events:
        strict.publish("invoice.created", {"n": 1}, tenant["id"], event_id="evt_plain")

        def failed():
            session.expire_all()
            return session.scalars(select(Delivery).where(Delivery.status == "failed")).all()

        [delivery] = wait_for(failed, timeout=30, message="the delivery to fail")
        wait_for(lambda: _finished(events, "webhooks.deliver"), timeout=30,
                 message="the deliver task to finish")
        # An absence needs a window: well past every retry of the 1 s test schedule.
        time.sleep(3 * sum(int(s) for s in test_env["WEBHOOKS_RETRY_SCHEDULE"].split(",")))
    assert receiver.requests == [] and receiver.connections == 0
    assert not [e for e in events if e["type"] == "task-retried"]

    session.expire_all()
    delivery = session.get(Delivery, delivery.id)
    assert (delivery.status, delivery.attempt_count, delivery.next_retry_at) == ("failed", 1,
                                                                                 None)
    assert delivery.last_error == ("https_required: URL must use https "
                                   "(WEBHOOKS_REQUIRE_HTTPS is on)")
    shown = client.get(f"/api/v1/webhooks/deliveries/{delivery.id}",
                       headers=tenant["headers"]).json
    [attempt] = shown["attempts"]
    assert attempt["error"] == {"error_class": "https_required",
                                "message": "URL must use https (WEBHOOKS_REQUIRE_HTTPS is on)"}
    assert attempt["response_status"] is None and attempt["request_headers"] == {}


def _finished(events: list[dict], task_name: str) -> set[str]:
    """The ids of the `task_name` tasks received, once every one of them has finished."""
    received = {e["uuid"] for e in events
                if e["type"] == "task-received" and e.get("name") == task_name}
    done = {e["uuid"] for e in events
            if e["type"] in ("task-succeeded", "task-failed", "task-retried")}
    return received if received and received <= done else set()

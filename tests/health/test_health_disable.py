"""Disable loudly (docs/HEALTH.md): a subscription failing continuously for the configured
time is disabled, and each warning stage reaches the tenant's other subscriptions exactly
once; a 410 disables at once and warns once too."""

from __future__ import annotations

import json

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    isolated_worker,
    subscription,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply

WARNINGS = ["webhook.subscription.failing", "webhook.subscription.disabled"]


def _warnings_received(receiver) -> list[dict]:
    return [json.loads(post.body) for post in receiver.posts("/watch")]


def _settled(session, subscription_id: str) -> bool:
    return all(d.status not in ("pending", "retrying")
               for d in deliveries_of(session, subscription_id))


def test_failing_for_the_configured_time_disables_with_one_warning_per_stage(
        app, client, tenant, receiver, session, test_env):
    receiver.respond = lambda request: Reply(500 if request.path == "/sick" else 200)
    sick = create_subscription(client, tenant, f"{receiver.base_url}/sick",
                               ["invoice.created", *WARNINGS])
    watcher = create_subscription(client, tenant, f"{receiver.base_url}/watch", WARNINGS)
    settings = {"WEBHOOKS_FAILING_WARNING_AFTER": "2",
                "WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS": "4"}
    with isolated_worker(test_env, settings, concurrency=2) as worker:
        worker.publish(event_type="invoice.created", event_data={"n": 0},
                       tenant_id=tenant["id"])
        # The failing warning comes after the second failed attempt, long before 4 s.
        wait_for(lambda: _warnings_received(receiver), timeout=60, message="a warning")
        assert subscription(session, sick["id"]).status == "active"

        # Keep failing: every attempt fails for 4 s, then the subscription is disabled.
        marker = 1
        while subscription(session, sick["id"]).status == "active":
            assert marker < 60, "the subscription was never disabled"
            worker.publish(event_type="invoice.created", event_data={"n": marker},
                           tenant_id=tenant["id"])
            marker += 1
            # A steady stream: the next event once this one's first attempt was made.
            wait_for(lambda n=marker: len(deliveries_of(session, sick["id"])) == n
                     and deliveries_of(session, sick["id"])[-1].attempt_count >= 1
                     or subscription(session, sick["id"]).status != "active",
                     timeout=60, message="the event's first attempt")
        disabled = subscription(session, sick["id"])
        assert disabled.disabled_reason.startswith("every attempt failed since")
        assert (disabled.disabled_at - disabled.failing_since).total_seconds() >= 4
        wait_for(lambda: _settled(session, sick["id"]), timeout=60,
                 message="the sick subscription's deliveries to settle")
        wait_for(lambda: len(_warnings_received(receiver)) >= 2, timeout=60,
                 message="the disabled warning")
        # A later event for it is kept as a `disabled` delivery, not sent.
        worker.publish(event_type="invoice.created", event_data={"n": 999},
                       tenant_id=tenant["id"])
        wait_for(lambda: len(deliveries_of(session, sick["id"])) == marker + 1, timeout=60,
                 message="the event after disabling")

    received = _warnings_received(receiver)
    assert sorted(body["type"] for body in received) == sorted(WARNINGS)  # once each
    for body in received:
        assert body["data"]["subscription_id"] == sick["id"]
        assert body["tenant_id"] == tenant["id"]
    disabled_event = next(b for b in received if b["type"] == WARNINGS[1])
    assert disabled_event["data"]["disabled_reason"] == disabled.disabled_reason
    # Never to the subscription they are about.
    assert all(json.loads(post.body)["type"] == "invoice.created"
               for post in receiver.posts("/sick"))
    assert deliveries_of(session, sick["id"])[-1].status == "disabled"
    assert watcher["id"] != sick["id"]

    # Re-activation ends the streak: the stages may fire again after a new one.
    patched = client.patch(f"/api/v1/webhooks/subscriptions/{sick['id']}",
                           headers=tenant["headers"], json={"is_active": True})
    assert patched.status_code == 200
    assert patched.json["health_stage"] is None and patched.json["failing_since"] is None


def test_a_410_disables_at_once_and_warns_once(app, client, tenant, receiver, session,
                                               test_env):
    receiver.respond = lambda request: Reply(410 if request.path == "/gone" else 200)
    gone = create_subscription(client, tenant, f"{receiver.base_url}/gone",
                               ["invoice.created"])
    create_subscription(client, tenant, f"{receiver.base_url}/watch", WARNINGS)
    with isolated_worker(test_env, concurrency=2) as worker:
        for marker in range(3):
            worker.publish(event_type="invoice.created", event_data={"n": marker},
                           tenant_id=tenant["id"])
        wait_for(lambda: len(deliveries_of(session, gone["id"])) == 3
                 and _settled(session, gone["id"]), timeout=60,
                 message="the deliveries to settle")
        wait_for(lambda: _warnings_received(receiver), timeout=60, message="the warning")
        assert subscription(session, gone["id"]).status == "disabled"
        # Whatever was in flight when the 410 came, one warning only.
        wait_for(lambda: all(d.status in ("success", "failed")
                             for d in deliveries_of(session)
                             if d.subscription_id != gone["id"]), timeout=60,
                 message="the warning's deliveries to finish")
    [warning] = _warnings_received(receiver)
    assert warning["type"] == "webhook.subscription.disabled"
    assert warning["data"]["subscription_id"] == gone["id"]
    assert "410" in warning["data"]["disabled_reason"]

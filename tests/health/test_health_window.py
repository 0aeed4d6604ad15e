"""A receiver that hangs holds a bounded share of a worker's deliveries in flight: its
window (webhooks_api.receivers.window) lets 10 attempts go, the rest are deferred without using
an attempt, and a healthy receiver's delivery goes out meanwhile."""

from __future__ import annotations

import json
import time

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    execute,
    isolated_worker,
    log_offset,
    log_since,
)
from tests.support.helpers import wait_for
from webhooks_api.receivers.window import INITIAL_WINDOW

HANGING_EVENTS = 25


def test_a_hanging_receiver_gets_its_window_and_the_rest_is_deferred(
        app, client, tenant, receiver, test_env, session):
    release = receiver.hold("/hang")
    hanging = create_subscription(client, tenant, f"{receiver.base_url}/hang",
                                  ["invoice.created"])
    execute(app, "UPDATE subscriptions SET timeout_seconds = 5 WHERE id = :id",
            id=hanging["id"])
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    offset = log_offset()
    # A short schedule (tests/conftest.py): the deferrals are capped at its 1 s.
    with isolated_worker(test_env, concurrency=40) as worker:
        try:
            for marker in range(HANGING_EVENTS):
                worker.publish(event_type="invoice.created", event_data={"n": marker},
                               tenant_id=tenant["id"])
            wait_for(lambda: log_since(offset).count("window full") >= 5, timeout=30,
                     message="attempts over the window deferred")
            assert len(receiver.posts("/hang")) == INITIAL_WINDOW

            started = time.monotonic()
            worker.publish(event_type="user.login", event_data={"n": 1},
                           tenant_id=tenant["id"])
            wait_for(lambda: any(json.loads(post.body)["data"]["n"] == 1
                                 for post in receiver.posts("/hook")), timeout=20,
                     message="the healthy delivery while the receiver hangs")
            assert time.monotonic() - started < 5
            assert len(receiver.posts("/hang")) == INITIAL_WINDOW  # still only its window
        finally:
            release.set()
    # Every hanging delivery ended one way or the other: delivered, or failed once it was
    # deferred past the end of its schedule; none was attempted more than its schedule.
    deliveries = deliveries_of(session, hanging["id"])
    assert len(deliveries) == HANGING_EVENTS
    for delivery in deliveries:
        assert len(attempts_of(session, delivery.id)) <= 4

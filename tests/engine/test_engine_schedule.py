"""The default retry schedule, asserted on the real retry calls: a worker with the default
configuration holds each countdown, and Celery's own `inspect().scheduled()` shows its
ETA. The delivery is then made due in the database and the next attempt sent, as the
countdown would after 5 min, 1 h and 6 h."""

from __future__ import annotations

from datetime import datetime

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    execute,
    finished_at,
    isolated_worker,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.config import DEFAULT_RETRY_SCHEDULE


def _held_countdowns(worker, delivery_id: str) -> dict[int, datetime]:
    """attempt number → ETA of every countdown the worker holds for the delivery."""
    replies = worker.client.control.inspect(timeout=2).scheduled() or {}
    held = {}
    for entries in replies.values():
        for entry in entries:
            kwargs = entry["request"]["kwargs"]
            assert set(kwargs) == {"delivery_id", "attempt_number", "trigger"}  # ids only
            if kwargs["delivery_id"] == delivery_id:
                held[kwargs["attempt_number"]] = datetime.fromisoformat(entry["eta"])
    return held


def test_the_default_schedule_is_300_3600_21600_then_failed(app, client, tenant, receiver,
                                                            session, test_env):
    receiver.respond = lambda request: Reply(500)
    create_subscription(client, tenant, receiver.url)
    # An empty value means "not set": the worker runs the default schedule.
    with isolated_worker(test_env, {"WEBHOOKS_RETRY_SCHEDULE": ""}) as worker:
        worker.publish(event_type="invoice.created", event_data={"n": 1},
                       tenant_id=tenant["id"])
        delivery = wait_for_delivery(session, lambda d: d.attempt_count == 1)

        for attempt_number, expected in enumerate(DEFAULT_RETRY_SCHEDULE, start=1):
            held = wait_for(lambda n=attempt_number: _held_countdowns(worker, delivery.id)
                            .get(n + 1), timeout=30, message="the retry's countdown")
            attempt = attempts_of(session, delivery.id)[attempt_number - 1]
            assert attempt.trigger == "automatic" and attempt.response_status == 500
            countdown = (held - finished_at(attempt)).total_seconds()
            assert abs(countdown - expected) < 1.5, (attempt_number, countdown)
            session.expire_all()
            stored = (session.get(type(delivery), delivery.id).next_retry_at
                      - finished_at(attempt)).total_seconds()
            assert abs(stored - expected) < 1.5, (attempt_number, stored)

            # What the countdown would do when it fires: the delivery is due, attempt n+1.
            execute(app, "UPDATE deliveries SET next_retry_at = now() WHERE id = :id",
                    id=delivery.id)
            worker.deliver(delivery.id, attempt_number + 1)
            wait_for_delivery(session, lambda d, n=attempt_number: d.id == delivery.id
                              and d.attempt_count == n + 1)

        final = wait_for_delivery(session, lambda d: d.status == "failed")
        assert final.attempt_count == 4 and final.next_retry_at is None
        assert 5 not in _held_countdowns(worker, delivery.id)
        assert len(receiver.posts()) == 4
        assert {p.headers["X-Webhook-Delivery-Id"] for p in receiver.posts()} == {delivery.id}

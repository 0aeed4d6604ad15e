"""Fresh traffic first: a backlog of retries to endpoints that hang until their timeout
does not delay a first attempt to a healthy endpoint (docs/operations.md "Fresh traffic
first"), measured against the same worker with no backlog; and a burst of publishes does
not hold back the first attempt of an event already stored
(docs/decisions/0014-deliveries-before-publishes.md)."""

from __future__ import annotations

import json
import time

from sqlalchemy import text

from tests.support.engine_support import (
    celery_client,
    create_subscription,
    execute,
    isolated_worker,
    new_prefix,
    store_without_messages,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.extensions import db
from webhooks_api.messaging.names import (
    DELIVER_QUEUE,
    DELIVER_TASK,
    PUBLISH_QUEUE,
    PUBLISH_TASK,
    RETRY_QUEUE,
)

SICK_SUBSCRIPTIONS = 10
EVENTS_PER_SICK = 3
HANG_SECONDS = 1.5  # the sick receiver answers after the 1 s timeout expired


def _respond(request):
    if request.path == "/sick":
        time.sleep(HANG_SECONDS)
    return Reply(200)


def _latency(worker, receiver, tenant, marker: int) -> float:
    """Seconds from publishing a `user.login` to its POST reaching the healthy endpoint."""
    started = time.time()
    worker.publish(event_type="user.login", event_data={"n": marker}, tenant_id=tenant["id"])
    post = wait_for(lambda: next((p for p in receiver.posts("/hook")
                                  if json.loads(p.body)["data"]["n"] == marker), None),
                    timeout=90, message="the healthy delivery")
    return post.at - started


def test_a_backlog_of_retries_does_not_delay_first_attempts(app, client, tenant, receiver,
                                                            test_env):
    receiver.respond = _respond
    create_subscription(client, tenant, receiver.url, ["user.login"])
    sick = [create_subscription(client, tenant, f"{receiver.base_url}/sick",
                                ["invoice.created"]) for _ in range(SICK_SUBSCRIPTIONS)]
    execute(app, "UPDATE subscriptions SET timeout_seconds = 1 WHERE id = ANY(:ids)",
            ids=[s["id"] for s in sick])
    # Two deliveries in flight: each sick attempt holds one of them, so only the queue
    # order keeps the first attempt from waiting behind the backlog.
    with isolated_worker(test_env, concurrency=2) as worker:
        baseline = _latency(worker, receiver, tenant, 1)

        # The sick endpoints' retries, all due now: 30 attempts of 1 s, two at a time.
        backlog = [delivery_id for _ in range(EVENTS_PER_SICK)
                   for delivery_id in store_without_messages(app, tenant["id"])]
        execute(app, "UPDATE deliveries SET status = 'retrying', attempt_count = 1, "
                "next_retry_at = now() WHERE id = ANY(:ids)", ids=backlog)
        for delivery_id in backlog:
            worker.client.send_task(DELIVER_TASK, queue=RETRY_QUEUE, kwargs={
                "delivery_id": delivery_id, "attempt_number": 2, "trigger": "automatic"})
        wait_for(lambda: receiver.posts("/sick"), timeout=30, message="the backlog to start")

        with_backlog = _latency(worker, receiver, tenant, 2)
        sick_attempts_before = len(receiver.posts("/sick"))

        # The backlog was still there (it takes about 15 s), yet the first attempt went
        # through about as fast as with none.
        assert sick_attempts_before < len(backlog) - 6, sick_attempts_before
        assert with_backlog < baseline + 5, (baseline, with_backlog)
        wait_for(lambda: len(receiver.posts("/sick")) == len(backlog), timeout=120,
                 message="the backlog to drain")


BURST = 100


def _stored(app, tenant_id: str, before: float | None = None) -> int:
    """The tenant's `invoice.created` events stored (before `before`, a Unix time)."""
    with app.app_context():
        return db.session.execute(text(
            "SELECT count(*) FROM events WHERE tenant_id = :tenant_id "
            "AND event_type = 'invoice.created' "
            "AND (CAST(:before AS float8) IS NULL OR created_at < to_timestamp(:before))"),
            {"tenant_id": tenant_id, "before": before}).scalar()


def test_a_burst_of_publishes_does_not_hold_back_first_attempts(app, client, tenant, receiver,
                                                                test_env):
    create_subscription(client, tenant, receiver.url, ["user.login"])
    [delivery_id] = store_without_messages(app, tenant["id"], "user.login")
    # Waiting before the worker starts: a burst of publishes, then the first attempt of an
    # event already stored, sent last.
    prefix = new_prefix(test_env)
    sender = celery_client({**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix})
    for n in range(BURST):
        sender.send_task(PUBLISH_TASK, queue=PUBLISH_QUEUE, kwargs={
            "event_type": "invoice.created", "event_data": {"n": n}, "tenant_id": tenant["id"]})
    sender.send_task(DELIVER_TASK, queue=DELIVER_QUEUE, kwargs={
        "delivery_id": delivery_id, "attempt_number": 1, "trigger": "automatic"})
    sender.close()

    with isolated_worker(test_env, prefix=prefix):  # one task at a time
        [post] = wait_for(lambda: receiver.posts("/hook"), timeout=60,
                          message="the first attempt")
        wait_for(lambda: _stored(app, tenant["id"]) == BURST, timeout=120,
                 message="the burst to be stored")
    # Taken first: few of the burst's events (none, on a quiet machine) were stored before
    # it; taking publishes first, all of them were.
    assert _stored(app, tenant["id"], before=post.at) < BURST // 2

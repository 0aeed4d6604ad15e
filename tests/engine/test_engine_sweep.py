"""webhooks.sweep recovers what the broker lost, from PostgreSQL's truth: a countdown lost
with its worker, a publish message lost, a deliver message never sent, a claim abandoned;
and two sweeps at once never take the same delivery."""

from __future__ import annotations

import threading

from tests.conftest import beat_process
from tests.support.engine_support import (
    ISOLATED_LOG,
    attempts_of,
    create_subscription,
    deliveries_of,
    event_row,
    execute,
    isolated_worker,
    new_prefix,
    store_without_messages,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.extensions import db
from webhooks_api.messaging.names import MAINTENANCE_QUEUE, SWEEP_TASK
from webhooks_worker.maintenance.sweep import sweep


def _sweep_now(app, task_events) -> dict:
    """One sweep run by the session worker, as beat would send it; waits until done."""
    task_id = app.extensions["celery"].send_task(SWEEP_TASK, queue=MAINTENANCE_QUEUE).id
    [finished] = task_events.wait_finished(task_id)
    assert finished["type"] == "task-succeeded"
    return finished


def test_a_countdown_lost_with_its_worker_is_swept_by_beat(app, client, tenant, receiver,
                                                           session, test_env, tmp_path):
    receiver.respond = lambda request: Reply(500) if len(receiver.posts()) == 1 else Reply()
    create_subscription(client, tenant, receiver.url)
    prefix = new_prefix(test_env)
    hour = {"WEBHOOKS_RETRY_SCHEDULE": "3600"}

    with isolated_worker(test_env, hour, prefix=prefix, cleanup=False) as doomed:
        doomed.publish(event_type="invoice.created", event_data={"n": 1},
                       tenant_id=tenant["id"])
        delivery = wait_for_delivery(session, lambda d: d.status == "retrying")
        wait_for(lambda: doomed.client.control.inspect(timeout=1).scheduled(),
                 message="the countdown to be held")
        doomed.kill()  # the held countdown dies with it, unacknowledged

    # An hour later, as far as the delivery knows.
    execute(app, "UPDATE deliveries SET next_retry_at = now() - interval '1 hour' "
                 "WHERE id = :id", id=delivery.id)
    swept = {**hour, "WEBHOOKS_SWEEP_INTERVAL_SECONDS": "1"}
    with isolated_worker(test_env, swept, prefix=prefix) as successor, \
            beat_process(successor.env, tmp_path, ISOLATED_LOG):
        done = wait_for_delivery(session, lambda d: d.status == "success", timeout=60)
    assert [(a.attempt_number, a.trigger) for a in attempts_of(session, done.id)] == [
        (1, "automatic"), (2, "swept")]
    assert len(receiver.posts()) == 2


def test_an_event_whose_publish_message_was_lost_is_fanned_out(app, client, tenant, receiver,
                                                               worker, session, task_events):
    create_subscription(client, tenant, receiver.url)
    store_without_messages(app, tenant["id"], fan_out=False)
    execute(app, "UPDATE events SET created_at = now() - interval '1 minute'")

    _sweep_now(app, task_events)
    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    assert [a.trigger for a in attempts_of(session, delivery.id)] == ["swept"]
    assert event_row(session, tenant["id"], delivery.event.event_id).fanned_out_at is not None
    assert len(receiver.posts()) == 1


def test_unsent_and_abandoned_deliveries_are_swept_and_fresh_ones_left(
        app, client, tenant, receiver, worker, session, task_events):
    create_subscription(client, tenant, receiver.url)
    [never_sent] = store_without_messages(app, tenant["id"], "invoice.created")
    [abandoned] = store_without_messages(app, tenant["id"], "invoice.paid")
    [fresh] = store_without_messages(app, tenant["id"], "invoice.voided")
    execute(app, "UPDATE deliveries SET next_retry_at = now() - interval '1 minute' "
                 "WHERE id = :id", id=never_sent)
    # A worker claimed it, then died before recording anything.
    execute(app, "UPDATE deliveries SET claimed_until = now() - interval '1 second' "
                 "WHERE id = :id", id=abandoned)

    _sweep_now(app, task_events)
    wait_for(lambda: len([d for d in deliveries_of(session) if d.status == "success"]) == 2,
             message="the two swept deliveries")
    by_id = {d.id: d for d in deliveries_of(session)}
    for delivery_id in (never_sent, abandoned):
        assert [a.trigger for a in attempts_of(session, delivery_id)] == ["swept"]
    assert (by_id[fresh].status, by_id[fresh].attempt_count) == ("pending", 0)
    assert sorted(p.headers["X-Webhook-Delivery-Id"] for p in receiver.posts()) == sorted(
        [never_sent, abandoned])


def test_two_sweeps_at_once_take_each_delivery_once(app, client, tenant, receiver, worker,
                                                    session):
    for _ in range(20):
        create_subscription(client, tenant, receiver.url)
    delivery_ids = store_without_messages(app, tenant["id"])
    execute(app, "UPDATE deliveries SET next_retry_at = now() - interval '1 minute'")
    settings = app.config["WEBHOOKS_SETTINGS"]
    start = threading.Barrier(2)
    reports = []

    def run_sweep():
        with app.app_context():
            start.wait()
            reports.append(sweep(db.session, settings))

    threads = [threading.Thread(target=run_sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sum(report.deliveries_requeued for report in reports) == len(delivery_ids) == 20
    wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)), timeout=60,
             message="every swept delivery")
    posted = sorted(p.headers["X-Webhook-Delivery-Id"] for p in receiver.posts())
    assert posted == sorted(delivery_ids)

"""What one delivery costs, measured: SQL statements (SQLAlchemy before_cursor_execute),
broker messages (task messages and the Celery events Flower reads) and HTTP connections.
The bounds below are the measured figures of docs/engine.md: a regression fails here."""

from __future__ import annotations

import threading

from tests.support.engine_support import (
    counting,
    create_subscription,
    deliveries_of,
    event_row,
    isolated_worker,
    publish_via_api,
    store_without_messages,
    wait_until_recorded,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Receiver, Reply
from webhooks_api.extensions import db
from webhooks_worker.delivery.attempt import attempt_delivery
from webhooks_worker.publishing.publish import publish_stored_or_new


def _attempt(app, delivery_id: str, attempt_number: int = 1):
    with app.app_context():
        return attempt_delivery(db.session, app.config["WEBHOOKS_SETTINGS"], delivery_id,
                                attempt_number, "automatic")


def test_statements_of_one_fan_out_and_one_attempt(app, client, tenant, receiver, worker):
    create_subscription(client, tenant, receiver.url)
    store_without_messages(app, tenant["id"], fan_out=False, event_id="evt_cost")
    [succeeding] = store_without_messages(app, tenant["id"])
    [failing] = store_without_messages(app, tenant["id"])
    [gone] = store_without_messages(app, tenant["id"])
    checked_out_during_post = []
    with counting(app) as counts:
        engine = counts["engine"]

        def respond(request):
            delivery_id = request.headers["X-Webhook-Delivery-Id"]
            if delivery_id in (succeeding, failing, gone):  # not the fan-out's (the worker's)
                checked_out_during_post.append(engine.pool.checkedout())
            return Reply({failing: 500, gone: 410}.get(delivery_id, 200))

        receiver.respond = respond
        with app.app_context():
            publish_stored_or_new(db.session, app.config["WEBHOOKS_SETTINGS"],
                                  tenant_id=tenant["id"], event_type=None, event_data=None,
                                  metadata=None, event_id="evt_cost")
        fan_out_statements = counts["statements"]

        counts["statements"] = 0
        assert _attempt(app, succeeding).status == "success"
        success_statements = counts["statements"]
        counts["statements"] = 0
        assert _attempt(app, failing).status == "retrying"
        retry_statements = counts["statements"]
        counts["statements"] = 0
        assert _attempt(app, gone).status == "disabled"
        gone_statements = counts["statements"]

    wait_until_recorded(app, 4)  # the fan-out's delivery went to the worker
    # Fan-out of a stored event: read it; insert every delivery and mark it, one statement.
    assert fan_out_statements <= 2
    # An attempt: the claim, then attempt + delivery + statistics in one statement.
    assert success_statements <= 2 and retry_statements <= 2
    # ...and a 410 also disables the subscription and its open deliveries, and publishes
    # the `webhook.subscription.disabled` warning (its stage and the event's insert).
    assert gone_statements <= 6
    # No pooled connection is held while the receiver works (the thread's own autocommit
    # connection, outside the pool, sits idle then).
    assert checked_out_during_post == [0, 0, 0]
    print(f"\nstatements: fan-out {fan_out_statements}, attempt {success_statements} "
          f"(success) / {retry_statements} (retry) / {gone_statements} (410)")


def test_a_new_event_is_stored_and_fanned_out_by_one_statement(app, client, tenant,
                                                              receiver):
    create_subscription(client, tenant, receiver.url)
    # The session's worker takes the delivery at once: its POST is held until the rows
    # are read, so the delivery is still as the fan-out wrote it.
    read = threading.Event()
    receiver.respond = lambda request: (read.wait(30), Reply(200))[1]
    try:
        with counting(app) as counts, app.app_context():
            [delivery_id] = publish_stored_or_new(
                db.session, app.config["WEBHOOKS_SETTINGS"], tenant_id=tenant["id"],
                event_type="invoice.created", event_data={"n": 1}, metadata=None,
                event_id="evt_one_statement")
        # The event (marked fanned out) and its deliveries: one statement, no BEGIN/COMMIT.
        assert counts["statements"] == 1 and counts["in_transaction"] == 0
        with app.app_context():
            assert event_row(db.session, tenant["id"], "evt_one_statement").fanned_out_at
            assert [(d.id, d.status) for d in deliveries_of(db.session)] == [
                (delivery_id, "pending")]
    finally:
        read.set()
    print(f"\nstatements: publish of a new event {counts['statements']}")


def test_broker_messages_and_connections_per_delivery(app, client, tenant, receiver, worker,
                                                      session, task_events):
    create_subscription(client, tenant, receiver.url)
    first_event = len(task_events.events)
    for n in range(10):
        publish_via_api(client, tenant, "invoice.created", {"n": n})
    wait_for(lambda: len(deliveries_of(session)) == 10
             and all(d.status == "success" for d in deliveries_of(session)),
             message="ten deliveries")

    delivery_ids = {delivery.id for delivery in deliveries_of(session)}

    def ours(event: dict) -> bool:
        """This test's tasks: its publishes, and deliveries of its events. A deliver task
        of an earlier test (sent before this one began, taken now) is not one of them."""
        return event["name"] == "webhooks.publish" or any(
            delivery_id in event.get("kwargs", "") for delivery_id in delivery_ids)

    def received() -> dict[str, str]:
        with task_events._lock:
            return {e["uuid"]: e["name"] for e in task_events.events[first_event:]
                    if e["type"] == "task-received" and ours(e)}

    # A task's events are sent in batches (BufferedTaskEvents), after the delivery was
    # stored, so wait for the deliver tasks' own events rather than the stored successes.
    def ten_deliver_tasks() -> dict[str, str] | None:
        found = received()
        return found if list(found.values()).count("webhooks.deliver") >= 10 else None

    names = wait_for(ten_deliver_tasks, message="ten deliver tasks received")
    wait_for(lambda: sum(1 for e in task_events.events if e.get("uuid") in names
                         and e["type"] == "task-succeeded") == len(names),
             message="every task's last event")
    with task_events._lock:
        events_of: dict[str, list[str]] = {uuid: [] for uuid in names}
        for event in task_events.events[first_event:]:
            if event.get("uuid") in names:
                events_of[event["uuid"]].append(event["type"])

    deliver_tasks = [uuid for uuid, name in names.items() if name == "webhooks.deliver"]
    publish_tasks = [uuid for uuid, name in names.items() if name == "webhooks.publish"]
    # One task message per delivery (plus one publish message per event), and four
    # monitoring events per task: sent, received, started, succeeded. The sweep (a 2 s
    # margin in tests) may re-send one delivery that waited longer than that in a loaded
    # suite; its claim makes no second attempt.
    assert len(deliver_tasks) in (10, 11) and len(publish_tasks) == 10
    four = ["task-received", "task-sent", "task-started", "task-succeeded"]
    assert all(sorted(types) == four for types in events_of.values()), events_of
    # Keep-alive is asserted where the deliveries in flight at once are known
    # (test_connections_are_kept_..., test_a_receiver_with_many_deliveries_in_flight_...):
    # here the ten run concurrently on the gevent pool, each on a connection of its own.


def test_connections_are_kept_for_more_receivers_than_urllib3_keeps_by_default(
        client, tenant, test_env):
    """One delivery at a time, four events to 15 receivers, each on a port of its own (a pool
    each): after the first event, every delivery reuses its receiver's connection. With
    urllib3's default of 10 pools, cycling through 15 would open a new connection almost
    every time (~60 in all)."""
    receivers = [Receiver().start() for _ in range(15)]
    try:
        for receiver in receivers:
            create_subscription(client, tenant, receiver.url, ["invoice.created"])
        with isolated_worker(test_env, concurrency=1) as worker:
            for number in range(1, 5):
                worker.publish(event_type="invoice.created", event_data={"n": number},
                               tenant_id=tenant["id"])
                wait_for(lambda n=number: all(len(r.posts()) == n for r in receivers),
                         timeout=60, message=f"event {number} at every receiver")
        opened = sum(receiver.connections for receiver in receivers)
        assert opened <= len(receivers) + 2, f"{opened} connections for 60 deliveries"
    finally:
        for receiver in receivers:
            receiver.stop()


def test_a_receiver_with_many_deliveries_in_flight_keeps_their_connections(
        client, tenant, receiver, test_env):
    """Two events to 30 subscriptions of one receiver, each event's 30 attempts in flight
    at once (the receiver answers when all 30 have arrived): the second event reuses the
    30 connections of the first. With urllib3's default of 10 idle connections per pool,
    20 were closed on return and opened again (50 in all)."""
    in_flight = 30
    barrier = threading.Barrier(in_flight, timeout=30)

    def answer_when_all_arrived(request):
        barrier.wait()
        return Reply()

    receiver.respond = answer_when_all_arrived
    for number in range(in_flight):
        create_subscription(client, tenant, f"{receiver.base_url}/hook/{number}",
                            ["invoice.created"])
    with isolated_worker(test_env, concurrency=40) as worker:
        for number in range(1, 3):
            worker.publish(event_type="invoice.created", event_data={"n": number},
                           tenant_id=tenant["id"])
            wait_for(lambda n=number: len(receiver.posts()) == n * in_flight, timeout=60,
                     message=f"event {number} at all {in_flight} subscriptions")
    assert receiver.connections <= in_flight + 2, (
        f"{receiver.connections} connections for {2 * in_flight} deliveries")


def test_the_publish_api_reads_nothing_back_after_its_commit(app, client, tenant):
    with counting(app) as counts:
        publish_via_api(client, tenant, "invoice.created", {"n": 1})
    # The key's lookup (one CTE), the event's INSERT … RETURNING, and nothing after the
    # commit: the answer comes from the row the INSERT returned.
    assert counts["statements"] == 2, counts["sql"]
    assert counts["sql"][-1].startswith("INSERT INTO events"), counts["sql"]

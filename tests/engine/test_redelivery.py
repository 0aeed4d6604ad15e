"""Issue 22 item 11: a publish message processed twice stores one event, and a message held
by a worker that dies comes back within minutes while a held countdown of hours is never
handed out twice (docs/decisions/0012-held-message-visibility.md).

"Twice" is what a redelivery does: the same message, with the same task id, reaches a
worker again. The first test re-sends a message exactly as it was published (same task id,
same arguments) to the session worker; the others SIGKILL real worker processes and let
Redis hand their messages out again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator

import psycopg2
import pytest
import redis
from celery.signals import before_task_publish
from kombu import Connection
from sqlalchemy import func, select

from tests.conftest import beat_process
from tests.support.engine_support import (
    TaskEvents,
    attempts_of,
    create_subscription,
    deliveries_of,
    isolated_worker,
    new_prefix,
    publish_via_api,
    store_without_messages,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.config import load_settings
from webhooks_api.domain.ids import ID_PATTERN, derived_id, new_id
from webhooks_api.domain.models import Delivery, Event
from webhooks_api.messaging.names import DELIVER_QUEUE, PUBLISH_QUEUE, PUBLISH_TASK, RETRY_QUEUE
from webhooks_api.services.bus import get_event_bus

# A worker whose messages of the publish, deliver and maintenance queues come back 12 s
# after it took them; its tasks end within 10 s (the short timeout must outlast them).
SHORT = {"WEBHOOKS_TASK_TIME_LIMIT_SECONDS": "10",
         "WEBHOOKS_SHORT_VISIBILITY_TIMEOUT_SECONDS": "12"}
# Events of a held message, delivered by the next worker: the short timeout, then up to
# ten idle polls of 2 s before that worker's next restore, a worker start and the fan-out;
# generous for a loaded machine, and far below the long timeout (15 min here).
REDELIVERED_WITHIN_SECONDS = 120
CUSTOM_TYPE = "acme.job.done"


@contextlib.contextmanager
def _publish_messages_sent() -> Iterator[list[dict]]:
    """The `webhooks.publish` messages this process sends while the block runs: task id,
    args and kwargs, as the broker gets them."""
    sent: list[dict] = []

    def on_publish(sender=None, body=None, headers=None, **kwargs):
        if sender == PUBLISH_TASK:
            sent.append({"id": headers["id"], "args": body[0], "kwargs": body[1]})

    before_task_publish.connect(on_publish, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(on_publish)


def _publish(path: str, app, client, tenant) -> None:
    data = {"invoice_id": "inv_twice"}
    if path == "send_task":  # publish.delay()'s message, sent by task name
        app.extensions["celery"].send_task(PUBLISH_TASK, args=["invoice.created", data,
                                                               tenant["id"]],
                                           queue=PUBLISH_QUEUE)
    elif path == "api":
        publish_via_api(client, tenant, data=data)
    else:
        with app.app_context():
            get_event_bus().publish("invoice.created", data, tenant["id"])


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("path", ["send_task", "api", "event_bus"])
def test_a_publish_message_processed_twice_stores_one_event(path, app, client, tenant, receiver,
                                                            worker, session, task_events):
    """The second run of the same message (what Redis does after a worker died before its
    ack) finds the event the first run stored: one event, one delivery per subscription,
    one POST each with the same webhook-id. The API and the event bus store before they
    enqueue (their message names the stored event); `publish.delay()` / `send_task`
    messages carry only the event, so its default id must come from the message."""
    for index in range(2):
        create_subscription(client, tenant, f"{receiver.base_url}/twice-{index}")
    with _publish_messages_sent() as sent:
        _publish(path, app, client, tenant)
    [message] = sent
    task_events.wait_finished(message["id"])
    wait_for(lambda: len(receiver.posts()) == 2, message="the first run's two POSTs")

    app.extensions["celery"].send_task(PUBLISH_TASK, args=message["args"],
                                       kwargs=message["kwargs"], queue=PUBLISH_QUEUE,
                                       task_id=message["id"])
    wait_for(lambda: task_events.of(message["id"]).count("task-succeeded") == 2,
             message="the second run of the same message")
    # A second event's deliveries are committed and enqueued by that run, before its ack.
    wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)),
             message="every delivery finished")
    assert _count(session, Event) == 1
    assert _count(session, Delivery) == 2
    posts = receiver.posts()
    assert sorted(p.path for p in posts) == ["/twice-0", "/twice-1"]
    [event] = session.scalars(select(Event)).all()
    assert {p.headers["webhook-id"] for p in posts} == {event.event_id}


def test_a_derived_event_id_has_the_generated_shape_and_depends_on_the_task_id_only():
    ids = {derived_id("evt", f"task-{n}") for n in range(2000)}
    assert len(ids) == 2000
    assert all(ID_PATTERN.match(i) and len(i) == len(new_id("evt")) for i in ids)
    assert derived_id("evt", "c0ffee") == derived_id("evt", "c0ffee")


def test_the_default_short_visibility_timeout_is_ten_minutes_and_spares_the_retry_queue():
    settings = load_settings({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert settings.task_time_limit_seconds == 420
    assert settings.short_visibility_timeout_seconds == 600  # the time limit + 180 s
    options = settings.broker_transport_options
    # The retry queue keeps the long timeout: 2 x 6 h + 300 s + 600 s = 12 h 15 min.
    assert options["visibility_timeout"] == 44100
    assert options["queue_visibility_timeouts"] == {
        "webhooks.publish": 600, "webhooks.deliver": 600, "webhooks.maintenance": 600}
    assert load_settings({"WEBHOOKS_TASK_TIME_LIMIT_SECONDS": "60"}) \
        .short_visibility_timeout_seconds == 240


def test_a_short_timeout_not_above_the_task_time_limit_is_refused():
    with pytest.raises(ValueError, match="WEBHOOKS_SHORT_VISIBILITY_TIMEOUT_SECONDS must be "
                                         "above WEBHOOKS_TASK_TIME_LIMIT_SECONDS"):
        load_settings({"WEBHOOKS_TASK_TIME_LIMIT_SECONDS": "30",
                       "WEBHOOKS_SHORT_VISIBILITY_TIMEOUT_SECONDS": "30"})


@contextlib.contextmanager
def _table_locked(test_env, table: str, mode: str) -> Iterator[None]:
    """A transaction of the test's own holding `LOCK TABLE`, released (rolled back) at the
    end of the block: a worker's statement on that table waits meanwhile."""
    connection = psycopg2.connect(test_env["DATABASE_URL"])
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN {mode} MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def _waiting_on_a_lock(test_env, fragment: str) -> int:
    """Statements of this database waiting for a lock, whose text contains `fragment`."""
    with psycopg2.connect(test_env["DATABASE_URL"]) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock' AND query ILIKE %s", (f"%{fragment}%",))
        count = cursor.fetchone()[0]
    connection.close()
    return count


def _broker(env) -> redis.Redis:
    return redis.Redis.from_url(env["CELERY_BROKER_URL"])


def _held(env) -> list[str]:
    """The queue (routing key) of every message workers of `env`'s prefix hold unacked."""
    prefix = env["WEBHOOKS_BROKER_KEY_PREFIX"]
    client = _broker(env)
    try:
        assert client.zcard(f"{prefix}unacked_index") == client.hlen(f"{prefix}unacked")
        return sorted(json.loads(raw)[2] for raw in client.hvals(f"{prefix}unacked"))
    finally:
        client.close()


def _queued(env, queue: str) -> int:
    client = _broker(env)
    try:
        return client.llen(env["WEBHOOKS_BROKER_KEY_PREFIX"] + queue)
    finally:
        client.close()


def _register_custom_type(app, tenant_id: str) -> None:
    with app.app_context():
        get_event_bus().register_event_type(CUSTOM_TYPE, "A job finished", tenant_id=tenant_id)


def _killed_holding_publish_messages(test_env, extra_env: dict, prefix: str, tenant_id: str,
                                     count: int, queues: str | None = None) -> list[str]:
    """A worker takes `count` publish messages of a custom type and is SIGKILLed while it
    holds them: each task waits for the read of its type (event_types locked), so no event
    is stored and nothing is acked; the sweep cannot know about them. Returns their ids."""
    with isolated_worker(test_env, extra_env, prefix=prefix, concurrency=count, cleanup=False,
                         extra_args=["-Q", queues] if queues else None) as doomed, \
            _table_locked(test_env, "event_types", "ACCESS EXCLUSIVE"):
        task_ids = [doomed.publish(event_type=CUSTOM_TYPE, event_data={"n": n},
                                   tenant_id=tenant_id) for n in range(count)]
        wait_for(lambda: _waiting_on_a_lock(test_env, "event_types") == count,
                 message="every publish task waiting for its event type")
        assert _held(doomed.env).count(PUBLISH_QUEUE) == count
        doomed.kill()
    return task_ids


def test_a_worker_killed_after_the_fan_out_commit_and_before_its_ack_yields_one_event(
        app, client, tenant, other_tenant, receiver, session, test_env, tmp_path):
    """The worker's store-and-fan-out statement commits while the worker is stopped
    (SIGSTOP; the statement autocommits on the server), then the worker is SIGKILLed: no
    deliver message sent, the publish message unacked. Redis hands the message out again
    (kombu's restore, here at once) and the sweep sends the stored deliveries: one event,
    one delivery per subscription, and each receiver sees that event's webhook-id once."""
    for index in range(2):
        create_subscription(client, tenant, f"{receiver.base_url}/once-{index}")
    prefix = new_prefix(test_env)
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix,
           "WEBHOOKS_SWEEP_INTERVAL_SECONDS": "1"}
    with isolated_worker(test_env, env, prefix=prefix, cleanup=False) as doomed:
        # A first event (of a tenant without subscriptions) prepares the worker's statements
        # on its connection, so that the one held below is the fan-out itself.
        warm_up = doomed.publish(event_type="invoice.created", event_data={"n": 0},
                                 tenant_id=other_tenant["id"])
        wait_for(lambda: _held(env) == [] and _count(session, Event) == 1,
                 message="the first event stored and acked")
        with _table_locked(test_env, "events", "SHARE ROW EXCLUSIVE"):  # blocks inserts
            task_id = doomed.publish(event_type="invoice.created", event_data={"n": 1},
                                     tenant_id=tenant["id"])
            wait_for(lambda: _waiting_on_a_lock(test_env, "webhooks_store_and_fan_out") == 1,
                     message="the fan-out statement waiting")
            os.killpg(doomed.process.pid, signal.SIGSTOP)
        wait_for(lambda: len(deliveries_of(session)) == 2, message="the fan-out committed")
        doomed.kill()
    assert _held(env) == [PUBLISH_QUEUE]
    assert _queued(env, DELIVER_QUEUE) == 0  # no deliver message went out

    with isolated_worker(test_env, env, prefix=prefix) as successor, \
            beat_process(env, tmp_path, tmp_path / "beat.log"):
        events = TaskEvents(successor.client).start()
        try:
            # What Redis does once the message's visibility timeout has passed (kombu's own
            # restore of each held message), so this does not depend on how long that is.
            with Connection(env["CELERY_BROKER_URL"],
                            transport_options={"global_keyprefix": prefix}) as connection:
                qos = connection.default_channel.qos
                for tag in _broker(env).hkeys(f"{prefix}unacked"):
                    qos.restore_by_tag(tag)
            events.wait_finished(task_id, timeout=60)
            assert events.finished(task_id)["type"] == "task-succeeded"
            wait_for(lambda: len(receiver.posts()) >= 2
                     and all(d.status == "success" for d in deliveries_of(session)),
                     timeout=60, message="the stored deliveries swept and delivered")
        finally:
            events.stop()
    assert len(deliveries_of(session)) == 2
    [event] = session.scalars(select(Event).where(Event.tenant_id == tenant["id"])).all()
    assert warm_up != task_id
    posts = receiver.posts()
    assert sorted(p.path for p in posts) == ["/once-0", "/once-1"]
    assert {p.headers["webhook-id"] for p in posts} == {event.event_id}
    assert event.event_id == derived_id("evt", task_id)


def test_a_killed_workers_publish_messages_are_delivered_within_minutes(
        app, client, tenant, receiver, session, test_env):
    """No beat, no sweep: only Redis handing the messages out again can deliver these
    events, which were never stored. They come back after the short timeout (12 s here,
    10 min by default), not after the long one of the countdowns (15 min here, 12 h 15 min
    by default)."""
    _register_custom_type(app, tenant["id"])
    create_subscription(client, tenant, receiver.url)
    prefix = new_prefix(test_env)
    task_ids = _killed_holding_publish_messages(test_env, SHORT, prefix, tenant["id"], 3)
    killed_at = time.monotonic()
    with isolated_worker(test_env, SHORT, prefix=prefix):
        wait_for(lambda: len(receiver.posts()) == 3, timeout=REDELIVERED_WITHIN_SECONDS + 60,
                 message="the held events delivered")
        took = time.monotonic() - killed_at
    assert took < REDELIVERED_WITHIN_SECONDS
    assert _count(session, Event) == 3
    assert sorted(p.headers["webhook-id"] for p in receiver.posts()) == sorted(
        derived_id("evt", task_id) for task_id in task_ids)


def test_a_held_countdown_of_hours_is_not_handed_out_again_by_the_short_restore(
        app, client, tenant, receiver, session, test_env):
    """A live worker holds a 2 h countdown; a second worker is killed holding publish
    messages taken after it. Once the live worker's restore has handed those out again
    (their short timeout passed, so the countdown's would have too), the countdown is
    still held once, and nothing else reached the receiver."""
    receiver.respond = lambda request: Reply(503)
    _register_custom_type(app, tenant["id"])
    sub = create_subscription(client, tenant, receiver.url)
    hours = {**SHORT, "WEBHOOKS_RETRY_SCHEDULE": "7200"}
    prefix = new_prefix(test_env)
    env = {**test_env, **hours, "WEBHOOKS_BROKER_KEY_PREFIX": prefix}
    # The holder takes no publish message: those are the killed worker's alone.
    with isolated_worker(test_env, env, prefix=prefix,
                         extra_args=["-Q", f"{DELIVER_QUEUE},{RETRY_QUEUE}"]) as holder:
        [delivery_id] = store_without_messages(app, tenant["id"])
        holder.deliver(delivery_id, 1)
        wait_for(lambda: _held(env) == [RETRY_QUEUE], message="the 2 h countdown held")
        [delivery] = deliveries_of(session)
        assert (delivery.status, delivery.attempt_count) == ("retrying", 1)

        _killed_holding_publish_messages(test_env, hours, prefix, tenant["id"], 2,
                                         queues=PUBLISH_QUEUE)
        killed_at = time.monotonic()
        wait_for(lambda: _queued(env, PUBLISH_QUEUE) == 2, timeout=REDELIVERED_WITHIN_SECONDS,
                 message="the killed worker's messages handed out again")
        took = time.monotonic() - killed_at
        assert _held(env) == [RETRY_QUEUE]
        assert _queued(env, RETRY_QUEUE) == 0
        assert took < REDELIVERED_WITHIN_SECONDS
    assert [a.attempt_number for a in attempts_of(session, delivery_id)] == [1]
    assert len(receiver.posts()) == 1 and sub["id"] == delivery.subscription_id

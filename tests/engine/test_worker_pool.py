"""The Procfile's worker is a stock Celery worker on the gevent pool: one process runs many
deliveries at once, PostgreSQL waits yield to the other deliveries (psycogreen), Celery's
hard time limit ends a task stuck outside the HTTP deadline, and a warm shutdown lets the
attempts in flight finish."""

from __future__ import annotations

import json
import signal
import time

from sqlalchemy import text

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    isolated_worker,
    log_offset,
    log_since,
    store_without_messages,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.extensions import db


def _arrived(receiver, path: str, marker: int) -> bool:
    return any(json.loads(post.body)["data"]["n"] == marker for post in receiver.posts(path))


def test_one_slow_statement_does_not_stop_the_other_deliveries_of_its_process(
        app, client, tenant, receiver, test_env, session):
    """One worker process. A delivery's claim waits on a row lock held by the test (a
    statement that takes as long as the test wants); meanwhile another event of the same
    process is delivered. Without psycopg2's wait callback libpq's wait would hold the
    whole process, and nothing else would move until the lock went."""
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    [stuck] = store_without_messages(app, tenant["id"], "user.login", {"n": 0})
    with isolated_worker(test_env, concurrency=10) as worker, \
            app.app_context(), db.engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM deliveries WHERE id = :id FOR UPDATE"),
                       {"id": stuck})
        worker.deliver(stuck, 1)

        def claim_waits_on_the_lock() -> bool:
            # A connection of its own: a transaction sees one snapshot of pg_stat_activity.
            with db.engine.connect() as watcher:
                return bool(watcher.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'EXECUTE webhooks_claim%'")).scalar())

        wait_for(claim_waits_on_the_lock, timeout=30, message="the claim to wait on the lock")
        started = time.monotonic()
        worker.publish(event_type="user.login", event_data={"n": 1}, tenant_id=tenant["id"])
        wait_for(lambda: _arrived(receiver, "/hook", 1), timeout=20,
                 message="the other delivery while the claim waits")
        assert time.monotonic() - started < 10
        assert not _arrived(receiver, "/hook", 0)  # still waiting on the lock
        holder.rollback()
        wait_for(lambda: _arrived(receiver, "/hook", 0), timeout=20,
                 message="the stuck delivery once the lock is gone")


def test_a_task_stuck_past_the_hard_time_limit_is_ended_and_the_worker_goes_on(
        app, client, tenant, receiver, test_env):
    """A claim stuck behind a row lock (outside any HTTP deadline) past
    WEBHOOKS_TASK_TIME_LIMIT_SECONDS: the gevent pool ends that task (gevent.Timeout in its
    greenlet), the process lives on and keeps delivering."""
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    [stuck] = store_without_messages(app, tenant["id"], "user.login", {"n": 0})
    offset = log_offset()
    with isolated_worker(test_env, {"WEBHOOKS_TASK_TIME_LIMIT_SECONDS": "2"},
                         concurrency=4) as worker:
        with app.app_context(), db.engine.connect() as holder:
            holder.execute(text("SELECT 1 FROM deliveries WHERE id = :id FOR UPDATE"),
                           {"id": stuck})
            worker.deliver(stuck, 1)
            wait_for(lambda: "Hard time limit (2s) exceeded" in log_since(offset),
                     timeout=30, message="the time limit to end the stuck task")
            holder.rollback()
        assert worker.process.poll() is None
        worker.publish(event_type="user.login", event_data={"n": 1}, tenant_id=tenant["id"])
        wait_for(lambda: _arrived(receiver, "/hook", 1), timeout=30,
                 message="a delivery after the time limit")


def test_sigterm_lets_the_attempts_in_flight_finish_then_the_worker_exits(
        client, tenant, receiver, test_env, session):
    """Three attempts to a receiver that takes 2 s are in flight at once; SIGTERM (a
    deploy) waits for them: each is recorded as delivered, and the worker exits 0."""
    def slow(request):
        time.sleep(2)
        return Reply(200)

    receiver.respond = slow
    subscription = create_subscription(client, tenant, f"{receiver.base_url}/slow",
                                       ["user.login"])
    with isolated_worker(test_env, concurrency=10) as worker:
        for marker in range(3):
            worker.publish(event_type="user.login", event_data={"n": marker},
                           tenant_id=tenant["id"])
        wait_for(lambda: len(receiver.posts("/slow")) == 3, timeout=30,
                 message="three attempts in flight")
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0
    deliveries = deliveries_of(session, subscription["id"])
    assert [delivery.status for delivery in deliveries] == ["success"] * 3
    for delivery in deliveries:
        [attempt] = attempts_of(session, delivery.id)
        assert attempt.response_status == 200 and attempt.duration_ms >= 2000


def test_an_https_receiver_that_holds_its_answer_does_not_hold_the_process(
        client, tenant, tls_receiver, test_env):
    """TLS sockets are gevent's too: one HTTPS attempt waiting for its answer, another
    HTTPS delivery of the same process goes through meanwhile."""
    release = tls_receiver.hold("/held")
    port = tls_receiver.server.server_address[1]
    create_subscription(client, tenant, f"https://localhost:{port}/held", ["user.login"])
    create_subscription(client, tenant, f"https://localhost:{port}/hook", ["user.registered"])
    with isolated_worker(test_env, {"WEBHOOKS_CA_BUNDLE": tls_receiver.cert_path},
                         concurrency=10) as worker:
        try:
            worker.publish(event_type="user.login", event_data={"n": 0},
                           tenant_id=tenant["id"])
            wait_for(lambda: tls_receiver.posts("/held"), timeout=30,
                     message="the held attempt in flight")
            worker.publish(event_type="user.registered", event_data={"n": 1},
                           tenant_id=tenant["id"])
            wait_for(lambda: _arrived(tls_receiver, "/hook", 1), timeout=20,
                     message="the other HTTPS delivery while one is held")
        finally:
            release.set()


def test_a_full_pool_takes_its_next_message_as_soon_as_a_slot_frees(
        app, client, tenant, receiver, test_env):
    """Two slots, a backlog of 20 deliveries to a receiver that answers after 100 ms. With
    both slots taken when the consumer polls, kombu's poll would wait out its 2 s before the
    next BRPOP (the backlog moving two messages per 2 s, ~20 s in all); the transport's
    short poll while the prefetch is full fetches the next message within milliseconds of
    an ack (redis_transport.FULL_POLL_SECONDS)."""
    def answer_after_100_ms(request):
        time.sleep(0.1)
        return Reply()

    receiver.respond = answer_after_100_ms
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    backlog = [delivery for n in range(20)
               for delivery in store_without_messages(app, tenant["id"], "user.login", {"n": n})]
    with isolated_worker(test_env, concurrency=2) as worker:
        started = time.monotonic()
        for delivery_id in backlog:
            worker.deliver(delivery_id, 1)
        wait_for(lambda: len(receiver.posts("/hook")) >= len(backlog), timeout=60,
                 message="the backlog of 20 deliveries")
        took = time.monotonic() - started
    # 20 × 100 ms on two slots is 1 s; waiting out 2 s polls would take ~20 s.
    assert took < 8, f"the backlog took {took:.1f} s"

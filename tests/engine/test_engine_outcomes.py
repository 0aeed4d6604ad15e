"""Outcomes of delivery attempts through the real worker: success, retries on the
configured schedule, failure after four attempts, 410, Retry-After, and the claim that
makes duplicate, stale and early messages harmless."""

from __future__ import annotations

import json

import psycopg2

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    event_row,
    execute,
    finished_at,
    publish_via_api,
    send_deliver,
    store_without_messages,
    subscription,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.extensions import db
from webhooks_worker.delivery.attempt import attempt_delivery


def _replies(*replies: Reply):
    """Answer the n-th request with the n-th reply, and every later one with the last."""
    def respond(request, _seen=[]):  # noqa: B006 (one list per _replies call)
        _seen.append(request)
        return replies[min(len(_seen), len(replies)) - 1]
    return respond


def test_success_on_the_first_attempt_records_every_field(app, client, tenant, receiver,
                                                          worker, session):
    receiver.respond = lambda request: Reply(200, b'{"ok": true}', {"X-Receiver": "yes"})
    sub = create_subscription(client, tenant, receiver.url, ["invoice.created"],
                              headers={"X-Custom-Token": "abc", "Authorization": "Bearer t"})
    event_id = publish_via_api(client, tenant, "invoice.created", {"invoice_id": "inv_1"})

    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    [request] = receiver.posts()
    assert request.headers["X-Custom-Token"] == "abc"
    assert request.headers["Authorization"] == "Bearer t"
    assert request.body == event_row(session, tenant["id"], event_id).body.encode()

    [attempt] = attempts_of(session, delivery.id)
    assert attempt.attempt_number == 1 and attempt.trigger == "automatic"
    assert abs(attempt.started_at.timestamp() - request.at) < 2
    assert 0 <= attempt.duration_ms < 5000
    assert attempt.request_headers["X-Webhook-Signature"] == "[redacted]"
    assert attempt.request_headers["webhook-signature"] == "[redacted]"
    assert attempt.request_headers["X-Webhook-Delivery-Id"] == delivery.id
    assert attempt.request_headers["X-Custom-Token"] == "[redacted]"
    assert attempt.request_headers["Authorization"] == "[redacted]"
    assert attempt.response_status == 200
    assert attempt.response_headers["X-Receiver"] == "yes"
    assert attempt.response_body == '{"ok": true}'
    assert attempt.error_class is None and attempt.error_message is None

    assert delivery.attempt_count == 1 and delivery.last_response_status == 200
    assert delivery.next_retry_at is None and delivery.completed_at is not None
    stats = subscription(session, sub["id"])
    assert (stats.success_count, stats.failure_count, stats.consecutive_failures) == (1, 0, 0)
    assert stats.last_success_at is not None and stats.last_failure_at is None


def test_500_then_200_is_two_attempts_of_one_delivery(app, client, tenant, receiver, worker,
                                                      session):
    receiver.respond = _replies(Reply(500, b"boom"), Reply(200))
    sub = create_subscription(client, tenant, receiver.url)
    event_id = publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    first, second = attempts_of(session, delivery.id)
    assert (first.response_status, first.response_body, first.error_message) == (
        500, "boom", None)
    assert second.response_status == 200 and second.attempt_number == 2
    # The configured schedule (1 s in tests) separates them.
    gap = (second.started_at - finished_at(first)).total_seconds()
    assert 0.9 <= gap < 10

    posts = receiver.posts()
    assert len(posts) == 2
    assert [p.headers["X-Webhook-Attempt"] for p in posts] == ["1", "2"]
    assert {p.headers["X-Webhook-Delivery-Id"] for p in posts} == {delivery.id}
    stored_body = event_row(session, tenant["id"], event_id).body.encode()
    assert all(p.body == stored_body for p in posts)  # the bytes stored once, sent each time
    stats = subscription(session, sub["id"])
    assert (stats.success_count, stats.failure_count, stats.consecutive_failures) == (1, 1, 0)


def test_always_500_fails_after_four_attempts(app, client, tenant, receiver, worker, session):
    receiver.respond = lambda request: Reply(500, b"down")
    sub = create_subscription(client, tenant, receiver.url)
    publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "failed", timeout=60)
    attempts = attempts_of(session, delivery.id)
    assert [a.attempt_number for a in attempts] == [1, 2, 3, 4]
    assert all(a.response_status == 500 and a.trigger == "automatic" for a in attempts)
    assert delivery.attempt_count == 4 and delivery.next_retry_at is None
    assert delivery.last_error == "HTTP 500" and delivery.completed_at is not None
    assert len(receiver.posts()) == 4
    stats = subscription(session, sub["id"])
    assert (stats.failure_count, stats.consecutive_failures) == (4, 4)


def test_410_disables_the_subscription_and_its_undelivered_deliveries(
        app, client, tenant, receiver, worker, session, task_events):
    receiver.respond = lambda request: Reply(410, b"gone")
    sub = create_subscription(client, tenant, receiver.url, ["invoice.*"])
    # A delivery whose message is still to come (in a queue, or held as a countdown).
    [waiting_id] = store_without_messages(app, tenant["id"], "invoice.paid")

    publish_via_api(client, tenant, "invoice.created")
    gone = wait_for_delivery(session, lambda d: d.status == "disabled" and d.attempt_count == 1)
    stats = subscription(session, sub["id"])
    assert stats.status == "disabled" and "410" in stats.disabled_reason
    waiting = next(d for d in deliveries_of(session) if d.id == waiting_id)
    assert waiting.status == "disabled" and waiting.attempt_count == 0
    assert [a.response_status for a in attempts_of(session, gone.id)] == [410]

    # The late message claims nothing, and a new event is recorded but not sent.
    task_events.wait_finished(send_deliver(app.extensions["celery"], waiting_id, 1))
    later_id = publish_via_api(client, tenant, "invoice.voided")
    wait_for(lambda: any(d.event.event_id == later_id for d in deliveries_of(session)),
             message="the later event's delivery row")
    later = next(d for d in deliveries_of(session) if d.event.event_id == later_id)
    assert later.status == "disabled"
    assert len(receiver.posts()) == 1


def test_retry_after_on_503_is_clamped_to_twice_the_schedule(app, client, tenant, receiver,
                                                             worker, session):
    # Schedule 1 s in tests: Retry-After 100 is clamped to 2 s, not 1 s nor 100 s.
    receiver.respond = _replies(Reply(503, b"busy", {"Retry-After": "100"}), Reply(200))
    create_subscription(client, tenant, receiver.url)
    publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "success", timeout=30)
    first, second = attempts_of(session, delivery.id)
    assert first.response_headers["Retry-After"] == "100"
    gap = (second.started_at - finished_at(first)).total_seconds()
    assert 1.9 <= gap < 10
    posts = receiver.posts()
    assert posts[1].at - posts[0].at >= 1.9


def test_the_same_deliver_message_twice_sends_one_post(app, tenant, client, receiver, worker,
                                                       session, task_events):
    create_subscription(client, tenant, receiver.url)
    [delivery_id] = store_without_messages(app, tenant["id"])
    celery = app.extensions["celery"]

    task_events.wait_finished(send_deliver(celery, delivery_id, 1),
                              send_deliver(celery, delivery_id, 1))
    assert len(receiver.posts()) == 1
    # A stale copy arriving after the attempt was recorded claims nothing either.
    task_events.wait_finished(send_deliver(celery, delivery_id, 1))
    assert len(receiver.posts()) == 1
    assert [a.attempt_number for a in attempts_of(session, delivery_id)] == [1]


def test_an_early_message_for_a_retrying_delivery_sends_nothing(app, tenant, client, receiver,
                                                               worker, session, task_events):
    create_subscription(client, tenant, receiver.url)
    [delivery_id] = store_without_messages(app, tenant["id"])
    execute(app, "UPDATE deliveries SET status = 'retrying', attempt_count = 1, "
                 "next_retry_at = now() + interval '1 hour' WHERE id = :id", id=delivery_id)
    celery = app.extensions["celery"]

    task_events.wait_finished(send_deliver(celery, delivery_id, 2),   # early
                              send_deliver(celery, delivery_id, 3))   # not its turn
    assert receiver.posts() == []
    [delivery] = deliveries_of(session)
    assert (delivery.status, delivery.attempt_count) == ("retrying", 1)

    execute(app, "UPDATE deliveries SET next_retry_at = now() WHERE id = :id", id=delivery_id)
    task_events.wait_finished(send_deliver(celery, delivery_id, 2))
    assert [json.loads(p.body)["type"] for p in receiver.posts()] == ["invoice.created"]
    assert wait_for_delivery(session, lambda d: d.status == "success").attempt_count == 2


def test_an_attempt_whose_delivery_was_disabled_meanwhile_is_still_recorded(
        app, client, tenant, receiver, session, test_env):
    """A 410 on a sibling (or a deleted subscription) lands while this POST is in flight."""
    create_subscription(client, tenant, receiver.url)
    [delivery_id] = store_without_messages(app, tenant["id"])

    def respond(request):
        with psycopg2.connect(test_env["DATABASE_URL"]) as connection, \
                connection.cursor() as cursor:
            cursor.execute("UPDATE deliveries SET status = 'disabled', completed_at = now() "
                           "WHERE id = %s", (delivery_id,))
        connection.close()
        return Reply(500)

    receiver.respond = respond
    with app.app_context():
        outcome = attempt_delivery(db.session, app.config["WEBHOOKS_SETTINGS"], delivery_id,
                                   1, "automatic")
    assert outcome.status == "disabled" and outcome.retry_in is None
    [attempt] = attempts_of(session, delivery_id)
    assert attempt.response_status == 500
    [delivery] = deliveries_of(session)
    assert (delivery.status, delivery.attempt_count, delivery.next_retry_at) == (
        "disabled", 1, None)

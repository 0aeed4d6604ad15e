"""webhooks.publish: both calling forms, idempotency, validation (built-in and custom
types with JSON Schema), wildcard matching, the bulk fan-out and its messages after commit,
and rejected input logged, counted and never retried."""

from __future__ import annotations

import json
import logging

import psycopg2
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from tests.support.engine_support import (
    counting,
    create_subscription,
    deliveries_of,
    event_row,
    execute,
    publish_via_api,
    store_without_messages,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from webhooks_api.domain.models import Delivery, Event
from webhooks_api.extensions import db
from webhooks_api.messaging.names import PUBLISH_QUEUE, PUBLISH_TASK
from webhooks_api.services.bus import get_event_bus
from webhooks_worker.publishing.publish import publish_stored_or_new

SHIPPED_SCHEMA = {"type": "object", "required": ["order_id"],
                  "properties": {"order_id": {"type": "string"}}}


def _publish_task(app, *args, **kwargs) -> str:
    """As a service without this package would: by task name."""
    return app.extensions["celery"].send_task(PUBLISH_TASK, args=list(args), kwargs=kwargs,
                                              queue=PUBLISH_QUEUE).id


def _publish_in_process(app, **arguments) -> list[str]:
    with app.app_context():
        return publish_stored_or_new(db.session, app.config["WEBHOOKS_SETTINGS"],
                                     **{"event_type": None, "event_data": None,
                                        "metadata": None, "event_id": None, **arguments})


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _register_shipped(app, tenant_id: str) -> None:
    with app.app_context():
        get_event_bus().register_event_type("acme.order.shipped", "An order left the warehouse",
                                            SHIPPED_SCHEMA, tenant_id=tenant_id)


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("webhooks_publish_rejected_total", {"reason": reason}) or 0


def test_publish_takes_full_arguments_or_a_stored_event_id(app, client, tenant, receiver,
                                                           worker, session):
    create_subscription(client, tenant, receiver.url)
    _publish_task(app, "invoice.created", {"invoice_id": "inv_1"}, tenant["id"])
    store_without_messages(app, tenant["id"], "invoice.paid", {"invoice_id": "inv_2"},
                           fan_out=False)
    session.expire_all()
    [stored] = session.scalars(select(Event).where(Event.event_type == "invoice.paid")).all()
    _publish_task(app, tenant_id=tenant["id"], event_id=stored.event_id)

    wait_for(lambda: len(deliveries_of(session)) == 2
             and all(d.status == "success" for d in deliveries_of(session)),
             message="both events delivered")
    bodies = sorted((json.loads(p.body) for p in receiver.posts()), key=lambda b: b["type"])
    assert [(b["type"], b["data"]) for b in bodies] == [
        ("invoice.created", {"invoice_id": "inv_1"}), ("invoice.paid", {"invoice_id": "inv_2"})]
    assert bodies[1]["id"] == stored.event_id


def test_publish_is_idempotent_per_tenant_and_event_id(app, client, tenant, receiver, worker,
                                                       session, task_events):
    create_subscription(client, tenant, receiver.url)
    first = _publish_task(app, "invoice.created", {"n": 1}, tenant["id"], event_id="order-42")
    task_events.wait_finished(first)  # the first one stored wins; later repeats change nothing
    second = _publish_task(app, "invoice.created", {"n": 2}, tenant["id"], event_id="order-42")
    assert publish_via_api(client, tenant, "invoice.created", {"n": 3},
                           **{"Idempotency-Key": "order-42"}) == "order-42"
    # The same id under another tenant is another event.
    other = _publish_task(app, "invoice.created", {"n": 4}, "tenant_other", event_id="order-42")
    task_events.wait_finished(second, other)

    wait_for_delivery(session, lambda d: d.status == "success")
    assert _count(session, Event) == 2 and _count(session, Delivery) == 1
    assert [json.loads(p.body)["data"] for p in receiver.posts()] == [{"n": 1}]
    assert event_row(session, "tenant_other", "order-42") is not None


def test_a_repeat_id_fans_out_the_stored_event_only_if_no_run_did(app, client, tenant,
                                                                    session):
    create_subscription(client, tenant, "http://127.0.0.1:9/hook")
    # Stored by an earlier publish whose fan-out message was lost.
    store_without_messages(app, tenant["id"], data={"n": 1}, fan_out=False, event_id="o-7")
    arguments = {"tenant_id": tenant["id"], "event_type": "invoice.created",
                 "event_data": {"n": 2}, "event_id": "o-7"}
    first = _publish_in_process(app, **arguments)
    again = _publish_in_process(app, **arguments)

    assert len(first) == 1 and again == []
    assert [d.id for d in deliveries_of(session)] == first
    assert json.loads(event_row(session, tenant["id"], "o-7").body)["data"] == {"n": 1}


def test_an_event_without_subscriber_is_stored_and_goes_nowhere(app, tenant):
    with counting(app) as counts:
        enqueued = _publish_in_process(app, tenant_id=tenant["id"], event_type="user.login",
                                       event_data={"user": "u1"}, event_id="login-1")
    assert enqueued == [] and counts["messages"] == []
    with app.app_context():
        assert _count(db.session, Event) == 1 and _count(db.session, Delivery) == 0


def test_deliver_messages_go_one_per_delivery_after_the_commit(app, client, tenant, test_env):
    for _ in range(3):
        create_subscription(client, tenant, "http://127.0.0.1:9/hook")
    visible_when_sent = []

    with psycopg2.connect(test_env["DATABASE_URL"]) as observer, counting(app) as counts:
        from celery.signals import before_task_publish

        def check_committed(sender=None, body=None, **kwargs):
            with observer.cursor() as cursor:  # another connection sees only committed rows
                cursor.execute("SELECT count(*) FROM deliveries WHERE id = %s",
                               (body[1]["delivery_id"],))
                visible_when_sent.append(cursor.fetchone()[0] == 1)
            observer.rollback()

        before_task_publish.connect(check_committed, weak=False)
        try:
            enqueued = _publish_in_process(app, tenant_id=tenant["id"],
                                           event_type="invoice.created", event_data={"n": 1})
        finally:
            before_task_publish.disconnect(check_committed)
    observer.close()

    assert len(enqueued) == 3 and visible_when_sent == [True] * 3
    assert [kwargs for _, kwargs in counts["messages"]] == [
        {"delivery_id": delivery_id, "attempt_number": 1, "trigger": "automatic"}
        for delivery_id in enqueued]


def test_the_fan_out_costs_the_same_statements_for_1_or_30_subscriptions(app, client, tenant):
    create_subscription(client, tenant, "http://127.0.0.1:9/one", ["invoice.paid"])
    for _ in range(30):
        create_subscription(client, tenant, "http://127.0.0.1:9/many", ["payment.*"])
    statements = {}
    for event_type in ("invoice.paid", "payment.succeeded"):
        with counting(app) as counts:
            enqueued = _publish_in_process(app, tenant_id=tenant["id"], event_type=event_type,
                                           event_data={"n": 1})
        statements[len(enqueued)] = counts["statements"]
    assert set(statements) == {1, 30}
    assert statements[1] == statements[30]


@pytest.mark.parametrize(("arguments", "reason"), [
    ({"event_type": "invoice.nonsense", "event_data": {}}, "invalid_event_type"),
    ({"event_type": "invoice.created", "event_data": ["not", "an", "object"]}, "invalid_data"),
    ({"event_type": "acme.order.shipped", "event_data": {"order_id": 7}}, "invalid_data"),
    ({"event_type": "invoice.created", "event_data": {"blob": "x" * 300_000}},
     "payload_too_large"),
    ({"event_type": "invoice.created", "event_data": {}, "event_id": "has spaces"},
     "invalid_event_id"),
    ({"event_id": "evt_never_stored"}, "event_not_found"),
])
def test_invalid_input_is_logged_with_its_reason_counted_and_dropped(app, tenant, caplog,
                                                                     arguments, reason):
    _register_shipped(app, tenant["id"])
    before = _rejected(reason)
    with caplog.at_level(logging.WARNING, logger="webhooks_worker.publishing.publish"), \
            counting(app) as counts:
        assert _publish_in_process(app, tenant_id=tenant["id"], **arguments) == []
    assert _rejected(reason) == before + 1
    assert f"publish rejected ({reason})" in caplog.text
    assert counts["messages"] == []
    with app.app_context():
        assert _count(db.session, Event) == 0


def test_the_worker_drops_invalid_input_without_retrying(app, tenant, worker, session,
                                                         task_events):
    task_id = _publish_task(app, "invoice.nonsense", {"n": 1}, tenant["id"])
    [finished] = task_events.wait_finished(task_id)
    assert finished["type"] == "task-succeeded"
    assert "task-retried" not in task_events.of(task_id)
    assert _count(session, Event) == 0


def test_custom_types_are_validated_against_their_schema(app, client, tenant, receiver,
                                                         worker, session, task_events):
    _register_shipped(app, tenant["id"])
    create_subscription(client, tenant, receiver.url, ["acme.order.shipped"])
    bad = _publish_task(app, "acme.order.shipped", {"order_id": 7}, tenant["id"])
    good = _publish_task(app, "acme.order.shipped", {"order_id": "o-7"}, tenant["id"])
    task_events.wait_finished(bad, good)

    wait_for_delivery(session, lambda d: d.status == "success")
    assert [json.loads(p.body)["data"] for p in receiver.posts()] == [{"order_id": "o-7"}]
    assert _count(session, Event) == 1


def test_a_custom_type_is_validated_against_its_row_as_it_is_now(app, client, tenant):
    """The worker remembers custom types; a row removed and registered again by hand with
    another schema is noticed by the next publish, which validates against the new one."""
    _register_shipped(app, tenant["id"])
    create_subscription(client, tenant, "http://127.0.0.1:9/hook", ["acme.order.shipped"])
    as_string = {"tenant_id": tenant["id"], "event_type": "acme.order.shipped",
                 "event_data": {"order_id": "o-1"}}
    assert len(_publish_in_process(app, **as_string)) == 1
    execute(app, "DELETE FROM event_types WHERE tenant_id = :tenant_id",
            tenant_id=tenant["id"])
    with app.app_context():
        get_event_bus().register_event_type(
            "acme.order.shipped", "Now with numbered orders",
            {"type": "object", "properties": {"order_id": {"type": "integer"}}},
            tenant_id=tenant["id"])
    before = _rejected("invalid_data")

    assert _publish_in_process(app, **as_string) == []
    assert _rejected("invalid_data") == before + 1
    assert len(_publish_in_process(app, **{**as_string, "event_data": {"order_id": 2}})) == 1
    with app.app_context():
        assert _count(db.session, Event) == 2 and _count(db.session, Delivery) == 2


def test_wildcard_matching_and_operational_events(app, client, tenant, receiver, worker,
                                                  session):
    subscriptions = {
        name: create_subscription(client, tenant, f"{receiver.base_url}/{name}", filters)["id"]
        for name, filters in {
            "star": ["*"], "invoices": ["invoice.*"], "paid": ["invoice.paid"],
            "ops": ["webhook.*"], "ops2": ["webhook.*"], "test": ["webhook.test"],
            "payments": ["payment.*"],
        }.items()
    }
    _publish_task(app, "invoice.paid", {"n": 1}, tenant["id"])
    _publish_task(app, "webhook.test", {"n": 2}, tenant["id"])
    _publish_task(app, "webhook.subscription.disabled",
                  {"subscription_id": subscriptions["ops"]}, tenant["id"])

    expected = {("/star", "invoice.paid"), ("/invoices", "invoice.paid"),
                ("/paid", "invoice.paid"),
                ("/ops", "webhook.test"), ("/ops2", "webhook.test"), ("/test", "webhook.test"),
                # about "ops": never sent to "ops" itself
                ("/ops2", "webhook.subscription.disabled")}
    wait_for(lambda: len(receiver.posts()) >= len(expected), message="every match")
    wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)),
             message="every delivery recorded")
    assert len(deliveries_of(session)) == len(expected)
    assert {(p.path, json.loads(p.body)["type"]) for p in receiver.posts()} == expected

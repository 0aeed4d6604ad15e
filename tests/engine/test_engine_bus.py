"""The EventBus of module developers: the singleton, custom type registration, single and
batch publishing, and `db=` publishing that follows the caller's transaction."""

from __future__ import annotations

import json
import threading

import psycopg2
import pytest
from sqlalchemy import func, select

from tests.support.engine_support import counting, create_subscription, deliveries_of
from tests.support.helpers import wait_for
from webhooks_api.domain.models import Event, EventType
from webhooks_api.errors import ConflictError, InvalidInputError
from webhooks_api.extensions import db
from webhooks_api.messaging.names import PUBLISH_TASK
from webhooks_api.services.bus import EventBus, get_event_bus


def _events_committed(test_env) -> int:
    """Counted from another connection: only committed rows."""
    with psycopg2.connect(test_env["DATABASE_URL"]) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events")
        count = cursor.fetchone()[0]
    connection.close()
    return count


def _wait_recorded(session) -> None:
    wait_for(lambda: (deliveries := deliveries_of(session))
             and all(d.status == "success" for d in deliveries), message="the delivery")


def _publish_messages(counts) -> list[dict]:
    return [kwargs for name, kwargs in counts["messages"] if name == PUBLISH_TASK]


def test_the_bus_is_one_object_made_without_any_io():
    buses = []
    threads = [threading.Thread(target=lambda: buses.append(get_event_bus()))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(buses[0], EventBus)
    assert all(bus is buses[0] for bus in buses) and get_event_bus() is buses[0]
    with pytest.raises(RuntimeError, match="application context"):
        get_event_bus().publish("invoice.created", {}, "tenant_x")


def test_custom_event_types_are_registered_with_validation(app, tenant):
    bus = get_event_bus()
    with app.app_context():
        registered = bus.register_event_type(
            "acme.order.shipped", "An order left the warehouse",
            {"type": "object", "required": ["order_id"]}, tenant_id=tenant["id"])
        assert (registered.name, registered.schema["required"]) == (
            "acme.order.shipped", ["order_id"])
        bus.register_event_type("acme.order.returned", tenant_id=tenant["id"])

        for name, schema, field in [
            ("Acme Order", None, "name"), ("acme", None, "name"),
            ("webhook.custom", None, "name"),
            ("acme.order.lost", {"type": "nonsense"}, "schema"),
            ("acme.order.lost", ["not", "a", "schema"], "schema"),
        ]:
            with pytest.raises(InvalidInputError) as raised:
                bus.register_event_type(name, "x", schema, tenant_id=tenant["id"])
            assert field in raised.value.errors, (name, raised.value.errors)
        for taken in ("acme.order.shipped", "invoice.created"):  # registered, or built in
            with pytest.raises(ConflictError):
                bus.register_event_type(taken, "again", tenant_id=tenant["id"])
        assert db.session.scalar(select(func.count()).select_from(EventType)) == 2


def test_publish_without_db_commits_at_once(app, client, tenant, receiver, worker, test_env,
                                            session):
    create_subscription(client, tenant, receiver.url)
    with app.app_context(), counting(app) as counts:
        event_id = get_event_bus().publish("invoice.created", {"n": 1}, tenant["id"],
                                           metadata={"source": "billing"})
    assert _events_committed(test_env) == 1
    assert _publish_messages(counts) == [{"tenant_id": tenant["id"], "event_id": event_id}]
    _wait_recorded(session)
    body = json.loads(receiver.posts()[0].body)
    assert (body["id"], body["metadata"]) == (event_id, {"source": "billing"})


def test_publish_with_db_is_sent_only_when_the_callers_transaction_commits(
        app, client, tenant, receiver, worker, test_env, session):
    create_subscription(client, tenant, receiver.url)
    with app.app_context(), counting(app) as counts:
        event_id = get_event_bus().publish("invoice.paid", {"n": 1}, tenant["id"],
                                           event_id="inv-paid-1", db=db.session)
        assert event_id == "inv-paid-1"
        assert _publish_messages(counts) == [] and _events_committed(test_env) == 0
        db.session.commit()
        assert _publish_messages(counts) == [{"tenant_id": tenant["id"],
                                              "event_id": "inv-paid-1"}]
    _wait_recorded(session)
    assert json.loads(receiver.posts()[0].body)["id"] == "inv-paid-1"


def test_publishing_with_db_leaves_no_listener_on_later_sessions(app, tenant):
    """Listening on the scoped session would listen on every session its factory makes,
    one more listener per request."""
    for n in range(2):
        with app.app_context():
            get_event_bus().publish("invoice.paid", {"n": n}, tenant["id"], db=db.session)
            db.session.commit()
    with app.app_context():
        assert len(db.session().dispatch.after_commit) == 0


def test_publish_with_db_and_a_rollback_publishes_nothing(app, client, tenant, receiver,
                                                          test_env):
    create_subscription(client, tenant, receiver.url)
    with app.app_context(), counting(app) as counts:
        get_event_bus().publish("invoice.paid", {"n": 1}, tenant["id"], db=db.session)
        db.session.rollback()
        db.session.commit()  # a later commit of the same session sends nothing either
    assert counts["messages"] == [] and _events_committed(test_env) == 0


def test_publish_batch_stores_all_or_nothing(app, client, tenant, receiver, worker, session,
                                             test_env):
    create_subscription(client, tenant, receiver.url)
    batch = [{"event_type": "invoice.created", "event_data": {"n": n}, "tenant_id": tenant["id"]}
             for n in range(3)]
    with app.app_context(), counting(app) as counts:
        with pytest.raises(InvalidInputError, match="event 1 of the batch"):
            get_event_bus().publish_batch(
                [batch[0], {**batch[1], "event_type": "invoice.nonsense"}, batch[2]])
        assert counts["messages"] == [] and _events_committed(test_env) == 0

        event_ids = get_event_bus().publish_batch(batch)
    assert len(set(event_ids)) == 3 and len(_publish_messages(counts)) == 3
    wait_for(lambda: len(deliveries_of(session)) == 3
             and all(d.status == "success" for d in deliveries_of(session)),
             message="three deliveries")
    assert sorted(json.loads(p.body)["data"]["n"] for p in receiver.posts()) == [0, 1, 2]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Event)) == 3

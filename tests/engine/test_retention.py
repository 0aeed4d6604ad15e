"""Retention: old attempts and events go, in batches; nothing still owed is ever pruned."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.helpers import wait_for
from webhooks_api.domain.models import Delivery, DeliveryAttempt, Event
from webhooks_api.messaging.names import PRUNE_TASK
from webhooks_api.services.events import store_event
from webhooks_worker.maintenance.retention import prune
from webhooks_worker.publishing.fanout import fan_out

OLD = "now() - interval '40 days'"


def delivered_events(client, tenant, receiver, session, count: int) -> list[str]:
    client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"],
                json={"url": receiver.url, "event_types": ["invoice.*"]})
    event_ids = [client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"n": n}}).json["event_id"]
        for n in range(count)]

    def all_delivered():
        session.expire_all()
        return [d.status for d in session.query(Delivery)] == ["success"] * count

    wait_for(all_delivered, timeout=60, message=f"{count} deliveries")
    return event_ids


def age(session, event_ids: list[str], attempts_only: bool = False) -> None:
    """Make events (and their attempts) 40 days old."""
    ids = {"ids": event_ids}
    if not attempts_only:
        session.execute(text(f"UPDATE events SET created_at = {OLD} "
                             "WHERE event_id = ANY(:ids)"), ids)
    session.execute(text(f"""
        UPDATE delivery_attempts SET started_at = {OLD} WHERE delivery_id IN (
            SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_pk
            WHERE e.event_id = ANY(:ids))"""), ids)
    session.commit()


def test_beat_prunes_old_history_and_keeps_what_is_owed(app, client, tenant, receiver, worker,
                                                        session):
    assert app.extensions["celery"].conf.beat_schedule["prune"]["task"] == PRUNE_TASK
    old_done, old_done_2, recent = delivered_events(client, tenant, receiver, session, 3)
    # An old event whose delivery never got its message: still owed, so it stays.
    settings = app.config["WEBHOOKS_SETTINGS"]
    owed = store_event(session, settings, tenant["id"], "invoice.paid", {"n": 9}).event
    fan_out(session, owed)
    session.commit()
    age(session, [old_done, old_done_2, owed.event_id])
    age(session, [recent], attempts_only=True)

    app.extensions["celery"].send_task(PRUNE_TASK)

    def pruned():
        session.expire_all()
        return session.query(Event).count() == 2

    wait_for(pruned, timeout=30, message="the prune task to delete the two old events")
    assert {e.event_id for e in session.query(Event)} == {recent, owed.event_id}
    assert {(d.event.event_id, d.status) for d in session.query(Delivery)} == {
        (recent, "success"), (owed.event_id, "pending")}
    # The recent event keeps its delivery; its 40-day-old attempt is gone.
    assert session.query(DeliveryAttempt).count() == 0


def test_prune_works_through_batches(app, client, tenant, receiver, worker, session):
    event_ids = delivered_events(client, tenant, receiver, session, 3)
    age(session, event_ids)
    report = prune(session, app.config["WEBHOOKS_SETTINGS"], batch_size=1)
    assert (report.attempts_deleted, report.events_deleted) == (3, 3)
    assert session.query(Event).count() == session.query(Delivery).count() == 0
    assert prune(session, app.config["WEBHOOKS_SETTINGS"]).events_deleted == 0

"""Fan-out: one delivery row per matching subscription, inserted in one statement.

Matching (DESIGN.md "Event types") runs in PostgreSQL: a subscription matches when its
filter array overlaps the filters that select the event type (`catalogue.filters_matching`),
served by the GIN index on `subscriptions.event_types`. Paused and deleted subscriptions
match nothing; disabled ones get `disabled` rows that can be replayed after re-activation.
Operational events about a subscription never go to that same subscription.
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from webhooks_api.catalogue import filters_matching, is_operational
from webhooks_api.models import Event
from webhooks_api.queue import Message, deliver_message
from webhooks_api.task_labels import deliver_reprs

# One round trip: the deliveries and the event's `fanned_out_at` (a data-modifying CTE
# runs whether or not the query reads it).
_INSERT_DELIVERIES = text("""
    WITH marked AS (
    UPDATE events SET fanned_out_at = now() WHERE id = :event_pk AND fanned_out_at IS NULL),
    inserted AS (
    INSERT INTO deliveries (id, event_pk, subscription_id, tenant_id, event_type, status,
                            next_retry_at)
    SELECT 'dlv_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24),
           :event_pk, s.id, s.tenant_id, :event_type,
           CASE WHEN s.status = 'disabled' THEN 'disabled' ELSE 'pending' END,
           now()
    FROM subscriptions s
    WHERE s.tenant_id = :tenant_id
      AND s.deleted_at IS NULL
      AND s.status IN ('active', 'disabled')
      AND s.event_types && CAST(:filters AS text[])
      AND s.id <> :excluded_subscription_id
    ON CONFLICT ON CONSTRAINT uq_deliveries_event_subscription DO NOTHING
    RETURNING id, status, subscription_id)
    SELECT inserted.id, inserted.status, s.url
    FROM inserted JOIN subscriptions s ON s.id = inserted.subscription_id
""")


def _subscription_concerned(event: Event) -> str:
    """The subscription an operational event is about ("" for any other event)."""
    if not is_operational(event.event_type):
        return ""
    return str(json.loads(event.body)["data"].get("subscription_id") or "")


def fan_out(session: Session, event: Event, trigger: str = "automatic") -> list[Message]:
    """Insert the event's deliveries and mark it fanned out; returns the deliver messages
    to send once the caller has committed (labelled for Flower with no further query).

    Idempotent: a second run inserts nothing and returns nothing.
    """
    rows = session.execute(
        _INSERT_DELIVERIES,
        {
            "event_pk": event.id,
            "event_type": event.event_type,
            "tenant_id": event.tenant_id,
            "filters": filters_matching(event.event_type),
            "excluded_subscription_id": _subscription_concerned(event),
        },
    ).all()
    return [
        deliver_message(row.id, 1, trigger,
                        deliver_reprs(row.id, 1, trigger, event.event_type, row.url))
        for row in rows if row.status == "pending"
    ]

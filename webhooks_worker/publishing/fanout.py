"""Fan-out: one delivery row per matching subscription, inserted in one statement.

Matching (DESIGN.md "Event types") runs in PostgreSQL: a subscription matches when its
filter array overlaps the filters that select the event type (`catalogue.filters_matching`),
served by the GIN index on `subscriptions.event_types`, and its payload filter, if it has
one, holds for the event's body: `body @@ filter_jsonpath`, the predicate
`domain.payload_filters` derived from it, evaluated in the same INSERT on the body parsed
once per statement. Paused and deleted subscriptions match nothing; disabled ones get
`disabled` rows that can be replayed after re-activation. Operational events about a
subscription never go to that same subscription.

Each matched subscription is locked `FOR KEY SHARE` (what the deliveries' foreign key
takes on it anyway) so that a pause, a delete or the service's disable, each of which
locks the row `FOR UPDATE` before it disables the open deliveries, serialises with the
fan-out: it waits for a fan-out that read the row first and then disables its deliveries;
a fan-out that reaches the row after the stop re-reads it (PostgreSQL re-checks a locked
row's conditions on its newest version): nothing matches a paused or deleted one, a
disabled one gets a `disabled` row. No delivery is left `pending` after the stop commits.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from webhooks_api.domain.catalogue import filters_matching, is_operational
from webhooks_api.domain.models import Event
from webhooks_api.messaging.enqueue import deliver_message
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_api.messaging.message import Message
from webhooks_api.services.events import NewEvent
from webhooks_worker.runtime import prepared
from webhooks_worker.runtime.prepared import Prepared


def _deliveries_of_fanned(body: str) -> str:
    """The deliveries of the one-row CTE `fanned` (the event's primary key), and their URLs
    for the messages. One row per delivery, or one row of NULLs when nothing matched; no row
    at all only when `fanned` is empty (a new event that was not stored).

    `body` is the SQL of the event body as jsonb: an uncorrelated subquery, which
    PostgreSQL evaluates at most once per statement (an InitPlan), not once per
    subscription.
    """
    return """
    inserted AS (
    INSERT INTO deliveries (id, event_pk, subscription_id, tenant_id, event_type, status,
                            next_retry_at)
    SELECT 'dlv_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24),
           fanned.id, s.id, s.tenant_id, :event_type,
           CASE WHEN s.status = 'disabled' THEN 'disabled' ELSE 'pending' END,
           now()
    FROM fanned JOIN subscriptions s
      ON s.tenant_id = :tenant_id
      AND s.deleted_at IS NULL
      AND s.status IN ('active', 'disabled')
      AND s.event_types && CAST(:filters AS text[])
      AND s.id <> :excluded_subscription_id
      AND (s.filter_jsonpath IS NULL OR """ + body + """ @@ s.filter_jsonpath)
    FOR KEY SHARE OF s
    ON CONFLICT ON CONSTRAINT uq_deliveries_event_subscription DO NOTHING
    RETURNING id, status, subscription_id)
    SELECT inserted.id, inserted.status, s.url
    FROM fanned
    LEFT JOIN (inserted JOIN subscriptions s ON s.id = inserted.subscription_id) ON true
"""


# A stored event: the deliveries and its `fanned_out_at` in one round trip (a
# data-modifying CTE runs whether or not the query reads it).
_FAN_OUT_STORED = Prepared("webhooks_fan_out_stored", """
    WITH marked AS (
    UPDATE events SET fanned_out_at = now() WHERE id = :event_pk AND fanned_out_at IS NULL),
    fanned AS (SELECT CAST(:event_pk AS bigint) AS id),
""" + _deliveries_of_fanned("(SELECT CAST(body AS jsonb) FROM events WHERE id = :event_pk)"), {
    "event_pk": "bigint", "event_type": "text", "tenant_id": "text", "filters": "text[]",
    "excluded_subscription_id": "text"})

# A new event: stored already fanned out, with its deliveries, by one statement (atomic
# on its own). A repeat id inserts nothing and returns no row; so does a custom type whose
# row (validated against, maybe from memory) no longer exists.
_STORE_AND_FAN_OUT = Prepared("webhooks_store_and_fan_out", """
    WITH fanned AS (
    INSERT INTO events (event_id, tenant_id, event_type, body, occurred_at, fanned_out_at)
    SELECT :event_id, :tenant_id, :event_type, :body, :occurred_at, now()
    WHERE CAST(:custom_type_pk AS bigint) IS NULL
       OR EXISTS (SELECT 1 FROM event_types WHERE id = :custom_type_pk)
    ON CONFLICT ON CONSTRAINT uq_events_tenant_event_id DO NOTHING
    RETURNING id),
""" + _deliveries_of_fanned("(SELECT CAST(:body AS jsonb))"), {
    "event_id": "text", "tenant_id": "text", "event_type": "text", "body": "text",
    "occurred_at": "timestamptz", "custom_type_pk": "bigint", "filters": "text[]",
    "excluded_subscription_id": "text"})


def _matching(event_type: str, tenant_id: str, data: Callable[[], dict]) -> dict:
    """The statement parameters that select the subscriptions. `data` is called only for
    an operational event, to exclude the subscription it is about: a stored body is parsed
    only then."""
    concerned = str(data().get("subscription_id") or "") if is_operational(event_type) else ""
    return {
        "event_type": event_type,
        "tenant_id": tenant_id,
        "filters": filters_matching(event_type),
        "excluded_subscription_id": concerned,
    }


def _messages(rows: list[Row], event_type: str, trigger: str) -> list[Message]:
    """Deliver messages for the pending rows, labelled for Flower with no further query."""
    return [
        deliver_message(row.id, 1, trigger,
                        deliver_reprs(row.id, 1, trigger, event_type, row.url))
        for row in rows if row.status == "pending"
    ]


_CHUNK_TARGETS = text("""
    SELECT d.id, d.event_type, s.url
    FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.id = ANY(:delivery_ids)
""")


def chunk_messages(session: Session, delivery_ids: list[str], trigger: str) -> list[Message]:
    """First-attempt messages for one chunk of a large fan-out (`webhooks.enqueue`). Its
    message carries only ids (a subscription URL may hold a secret), so their labels are
    read back here, in one query per chunk, in the task and not on any send path."""
    targets = {row.id: row for row in session.execute(
        _CHUNK_TARGETS, {"delivery_ids": delivery_ids})}
    session.commit()  # the connection goes back before the broker is called
    messages = []
    for delivery_id in delivery_ids:
        row = targets.get(delivery_id)
        reprs = deliver_reprs(delivery_id, 1, trigger, row.event_type if row else None,
                              row.url if row else None)
        messages.append(deliver_message(delivery_id, 1, trigger, reprs))
    return messages


def fan_out(session: Session, event: Event, trigger: str = "automatic") -> list[Message]:
    """Insert a stored event's deliveries and mark it fanned out; returns the deliver
    messages to send once the caller has committed.

    Idempotent: a second run inserts nothing and returns nothing.
    """
    rows = prepared.execute(session.connection(), _FAN_OUT_STORED, {
        "event_pk": event.id,
        **_matching(event.event_type, event.tenant_id, lambda: json.loads(event.body)["data"]),
    }).all()
    return _messages(rows, event.event_type, trigger)


def store_and_fan_out(event: NewEvent) -> list[Message] | None:
    """Store a new event with its deliveries in one statement, committed by itself; returns
    the deliver messages to send, or None when nothing was written: the event id was
    already stored, or its custom type is gone."""
    rows = prepared.run(_STORE_AND_FAN_OUT, {
        "event_id": event.event_id, "body": event.body, "occurred_at": event.occurred_at,
        "custom_type_pk": event.custom_type_pk,
        **_matching(event.event_type, event.tenant_id, lambda: event.data),
    }).all()
    return _messages(rows, event.event_type, "automatic") if rows else None

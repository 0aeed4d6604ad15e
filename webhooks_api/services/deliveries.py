"""Deliveries as a tenant sees them: lists, one delivery with its attempts, manual re-send.

A manual re-send (DESIGN.md) is one immediate attempt with trigger `manual`, on a delivery
in any state: the row is reopened with `manual_pending` set, which makes any automatic
message still queued for it claim nothing, and the deliver message is sent after commit.

Searching by what was delivered (event id, payload) selects the tenant's events first: the
payload filters are jsonb containment on the stored body, answered by the GIN index
`ix_events_body_path` (migration 0011), whose expression `CAST(body AS JSONB)` they repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, any_, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, lazyload

from webhooks_api.domain.ids import ID_PATTERN
from webhooks_api.domain.models import (
    OPEN_DELIVERY_STATUSES,
    Delivery,
    Event,
    Subscription,
    event_body_json,
)
from webhooks_api.domain.payload_search import PayloadMatch
from webhooks_api.errors import ConflictError, NotFoundError
from webhooks_api.messaging.enqueue import deliver_message, send_after_commit
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_api.services.pagination import DEFAULT_LIMIT, Page, newest_first

logger = logging.getLogger(__name__)


def disable_open_deliveries(session: Session, subscription_id: str) -> int:
    """Turn the subscription's undelivered deliveries into `disabled` (caller commits);
    a queued message for one of them then claims nothing."""
    return session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription_id,
               Delivery.status.in_(OPEN_DELIVERY_STATUSES))
        .values(status="disabled", next_retry_at=None, manual_pending=False,
                completed_at=func.now())
    ).rowcount


def _events_matching(tenant_id: str, event_id: str | None,
                     payload: Sequence[PayloadMatch]) -> Select | None:
    """The ids of the tenant's events with this id and every payload filter met (each by
    one of its documents), or None when nothing is asked of the event."""
    body = event_body_json()
    conditions = [or_(*(body.op("@>")(cast(literal(document), JSONB))
                        for document in condition.documents))
                  for condition in payload]
    if event_id is not None:
        conditions.append(Event.event_id == event_id)
    if not conditions:
        return None
    return select(Event.id).where(Event.tenant_id == tenant_id, *conditions)


def list_deliveries(session: Session, tenant_id: str, *, limit: int = DEFAULT_LIMIT,
                    cursor: str | None = None, status: str | None = None,
                    event_type: str | None = None, subscription_id: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    response_status: tuple[int, int] | None = None,
                    event_id: str | None = None,
                    payload: Sequence[PayloadMatch] = ()) -> Page:
    """Newest first; deliveries of deleted subscriptions included (their history).
    `response_status` is a range of codes (both ends included) that the last attempt's
    response status must be in."""
    conditions = [Delivery.tenant_id == tenant_id]
    if response_status is not None:
        conditions.append(Delivery.last_response_status.between(*response_status))
    if status is not None:
        conditions.append(Delivery.status == status)
    if event_type is not None:
        conditions.append(Delivery.event_type == event_type)
    if subscription_id is not None:
        conditions.append(Delivery.subscription_id == subscription_id)
    if since is not None:
        conditions.append(Delivery.created_at >= since)
    if until is not None:
        conditions.append(Delivery.created_at < until)
    events = _events_matching(tenant_id, event_id, payload)
    if events is None:
        statement = select(Delivery).where(*conditions)
    else:
        # The matching events first, then their deliveries by `event_pk`, in a CTE that
        # PostgreSQL plans on its own; the page sorts what matched. PostgreSQL estimates
        # that 1 % of events match any `@>` (bodies this wide get no statistics), where an
        # invoice id matches one: as one query, the page's ORDER BY ... LIMIT led it to walk
        # the tenant's deliveries newest first testing each one's event, and an IN list to
        # hash-join them all; both read every delivery of the tenant (1 s, then 25 ms for
        # 100,000). `= ANY(ARRAY(...))` is one value list, looked up in the index.
        matched = (select(Delivery.id)
                   .where(*conditions,
                          Delivery.event_pk == any_(func.array(events.scalar_subquery())))
                   .cte("matched").prefix_with("MATERIALIZED"))
        statement = select(Delivery).where(Delivery.id.in_(select(matched.c.id)))
    statement = statement.options(lazyload(Delivery.attempts))
    return newest_first(session, statement, Delivery, limit, cursor)


def get_delivery(session: Session, tenant_id: str, delivery_id: str) -> Delivery:
    delivery = None
    if ID_PATTERN.match(delivery_id):
        delivery = session.scalar(
            select(Delivery).where(Delivery.id == delivery_id, Delivery.tenant_id == tenant_id)
        )
    if delivery is None:
        raise NotFoundError(f"delivery {delivery_id} not found")
    return delivery


def lock_receiving_subscription(session: Session, subscription_id: str) -> Subscription:
    """The subscription, share-locked (a concurrent pause or delete waits, then disables
    the re-sends too); 409 unless it can receive."""
    subscription = session.get(Subscription, subscription_id, with_for_update={"read": True})
    if subscription.deleted_at is not None:
        raise ConflictError(f"subscription {subscription.id} was deleted; "
                            "its deliveries cannot be sent again")
    if subscription.status != "active":
        raise ConflictError(
            f"subscription {subscription.id} is {subscription.status}; re-activate it "
            "(PATCH is_active: true) before re-sending its deliveries")
    return subscription


def queue_manual_attempts(session: Session, selected: Select, queue: str | None = None,
                          bulk_retry_id: str | None = None) -> list[str]:
    """Reopen the deliveries whose ids `selected` yields (oldest first) for one manual
    attempt each, skipping any with an attempt in flight, and queue their messages for
    after the caller's commit; returns the ids reopened, in order. `bulk_retry_id`: the
    job they are queued for, recorded on their attempts (None takes a delivery out of
    the job that queued it before).

    Reopened rows are `pending`, so a second call at the same time selects none twice."""
    reopened = sorted(session.execute(
        update(Delivery)
        .where(Delivery.id.in_(selected),
               or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < func.now()))
        .values(status="pending", manual_pending=True, next_retry_at=func.now(),
                claimed_until=None, completed_at=None, bulk_retry_id=bulk_retry_id)
        .returning(Delivery.created_at, Delivery.id, Delivery.attempt_count,
                   Delivery.event_type)
        .execution_options(synchronize_session=False)
    ).all())
    send_after_commit(session, [
        deliver_message(row.id, row.attempt_count + 1, "manual",
                        deliver_reprs(row.id, row.attempt_count + 1, "manual", row.event_type),
                        queue=queue)
        for row in reopened])
    return [row.id for row in reopened]


def retry_delivery(session: Session, tenant_id: str, delivery_id: str) -> Delivery:
    """Queue one manual attempt now; 409 when its subscription cannot receive."""
    delivery = get_delivery(session, tenant_id, delivery_id)
    lock_receiving_subscription(session, delivery.subscription_id)
    if not queue_manual_attempts(session, select(Delivery.id)
                                 .where(Delivery.id == delivery.id)):
        session.rollback()
        raise ConflictError(f"an attempt of delivery {delivery.id} is in progress; "
                            "retry when it has finished")
    session.commit()
    session.refresh(delivery)
    logger.info("delivery %s: manual attempt %s queued for tenant %s", delivery.id,
                delivery.attempt_count + 1, tenant_id)
    return delivery
